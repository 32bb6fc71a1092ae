export const credentialsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['email', 'password'],
  properties: {
    email: { type: 'string', format: 'email', maxLength: 320 },
    password: { type: 'string', minLength: 8, maxLength: 256 },
  },
} as const;

export interface CredentialsBody {
  email: string;
  password: string;
}

export const userSchema = {
  type: 'object',
  required: ['id', 'email', 'role', 'created_at'],
  properties: {
    id: { type: 'string', format: 'uuid' },
    email: { type: 'string' },
    role: { enum: ['user', 'admin'] },
    created_at: { type: 'string', format: 'date-time' },
  },
} as const;

export const tokenResponseSchema = {
  type: 'object',
  required: ['user', 'access_token', 'token_type', 'expires_in'],
  properties: {
    user: userSchema,
    access_token: { type: 'string' },
    token_type: { const: 'Bearer' },
    expires_in: { type: 'integer' },
  },
} as const;
