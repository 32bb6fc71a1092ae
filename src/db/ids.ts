import { v7 } from 'uuid';

/** Time-ordered UUIDs keep primary-key indexes append-mostly and sort by creation. */
export const newId = (): string => v7();

export const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
export const isUuid = (s: string): boolean => new RegExp(UUID_PATTERN).test(s);
