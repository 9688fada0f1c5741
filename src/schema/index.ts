import { builder } from './builder';
import './user';
import './chat';
import './reaction';
import './attachment';
import './message';
import './events';
import './search';
import '../resolvers/auth';
import '../resolvers/users';
import '../resolvers/chats';
import '../resolvers/messages';
import '../resolvers/reactions';
import '../resolvers/bot';
import '../resolvers/search';

export const schema = builder.toSchema({ sortSchema: true });
