import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'sqlite',
  schema: './control-plane/store/schema.ts',
  out: './migrations',
});
