-- Sign-in with providers: linked identities, pending sign-ins (state, PKCE verifier, nonce) and
-- link requests awaiting the existing user's confirmation. Users made by a provider have an empty
-- hashed_password (no password).

-- CreateTable
CREATE TABLE "user_identities" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "user_id" INTEGER NOT NULL,
    "provider" TEXT NOT NULL,
    "subject" TEXT NOT NULL,
    "email" TEXT,
    "created_at" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "user_identities_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "oauth_sign_ins" (
    "state_hash" TEXT NOT NULL PRIMARY KEY,
    "provider" TEXT NOT NULL,
    "code_verifier" TEXT NOT NULL,
    "nonce" TEXT,
    "expires_at" DATETIME NOT NULL
);

-- CreateTable
CREATE TABLE "oauth_link_requests" (
    "token_hash" TEXT NOT NULL PRIMARY KEY,
    "user_id" INTEGER NOT NULL,
    "provider" TEXT NOT NULL,
    "subject" TEXT NOT NULL,
    "email" TEXT NOT NULL,
    "expires_at" DATETIME NOT NULL,
    CONSTRAINT "oauth_link_requests_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateIndex
CREATE UNIQUE INDEX "user_identities_provider_subject_key" ON "user_identities"("provider", "subject");

-- CreateIndex
CREATE UNIQUE INDEX "user_identities_user_id_provider_key" ON "user_identities"("user_id", "provider");

-- CreateIndex
CREATE INDEX "oauth_sign_ins_expires_at_idx" ON "oauth_sign_ins"("expires_at");

-- CreateIndex
CREATE INDEX "oauth_link_requests_user_id_idx" ON "oauth_link_requests"("user_id");

-- CreateIndex
CREATE INDEX "oauth_link_requests_expires_at_idx" ON "oauth_link_requests"("expires_at");
