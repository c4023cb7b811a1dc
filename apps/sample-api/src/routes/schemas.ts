/** `:id` path parameters: a UUID, nothing else (a malformed id is a 400). */
export const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', format: 'uuid' } },
  additionalProperties: false,
} as const;
