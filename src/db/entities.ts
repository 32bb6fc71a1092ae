import { Agent } from '../agents/agent.entity.js';
import { Message } from '../messages/message.entity.js';
import { ChatSession } from '../sessions/session.entity.js';
import { Task } from '../tasks/task.entity.js';
import { User } from '../users/user.entity.js';

/** Every entity, listed explicitly: discovery never depends on file globs or import side effects. */
export const entities = [User, Agent, ChatSession, Message, Task];
