import { builder } from './builder';
import './user';
import './chat';
import './message';
import '../resolvers/auth';
import '../resolvers/chats';
import '../resolvers/messages';

export const schema = builder.toSchema({ sortSchema: true });
