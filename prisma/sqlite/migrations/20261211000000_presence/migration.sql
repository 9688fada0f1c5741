-- Presence: when each user was last seen online, kept across restarts.
ALTER TABLE "users" ADD COLUMN "last_seen_at" DATETIME;
