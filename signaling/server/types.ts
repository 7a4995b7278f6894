export type Meta = Record<string, unknown>;
