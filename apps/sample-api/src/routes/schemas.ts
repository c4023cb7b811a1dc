import { CURSOR_PATTERN, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX } from './pagination.js';

/** `:id` path parameters: a UUID, nothing else (a malformed id is a 400). */
export const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', format: 'uuid' } },
  additionalProperties: false,
} as const;

/**
 * The query of every list route: `?limit=` (1 to {@link PAGE_LIMIT_MAX}, {@link PAGE_LIMIT_DEFAULT}
 * when absent; anything else is a 400) and `?cursor=`, the `next_cursor` of the page before.
 */
export const pageQuery: Readonly<Record<string, unknown>> = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: PAGE_LIMIT_MAX, default: PAGE_LIMIT_DEFAULT },
    cursor: {
      type: 'string',
      pattern: CURSOR_PATTERN,
      description: "The previous page's `next_cursor`, as it was given.",
    },
  },
  additionalProperties: false,
};

/** What {@link pageQuery} lets through. */
export interface PageQuery {
  readonly limit: number;
  readonly cursor?: string;
}

/**
 * The 200 answer of a list route: `{ items, next_cursor }`, `next_cursor`
 * being `null` on the last page.
 */
export function pageSchema(item: object): Record<string, unknown> {
  return {
    type: 'object',
    required: ['items', 'next_cursor'],
    properties: {
      items: { type: 'array', maxItems: PAGE_LIMIT_MAX, items: item },
      next_cursor: {
        type: ['string', 'null'],
        description: 'Pass it as `?cursor=` for the next page; `null` on the last page.',
      },
    },
    additionalProperties: false,
  };
}
