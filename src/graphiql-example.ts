/**
 * What GraphiQL opens with (outside production, until someone has typed their own): how to get a
 * token and where it goes, then a query to run with it.
 */
export const GRAPHIQL_EXAMPLE = `# Welcome to Gemini Coop's GraphQL API.
#
# 1. Get a token. Register once (paste this into a new tab and run it):
#      mutation { register(username: "ada", email: "ada@example.com", password: "a long password") { token } }
#    or log in:
#      mutation { login(username: "ada", password: "a long password") { token } }
#
# 2. Put the token in the Headers pane below:
#      {"Authorization": "Bearer <token>"}
#
# 3. Run this query:
query MeAndMyChats {
  me {
    id
    username
  }
  chats {
    id
    name
    unreadCount
    lastMessage {
      username
      content
      createdAt
    }
  }
}
`;
