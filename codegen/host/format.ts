// The committed prettier options for generated host code: fixed here (not read from the user's
// folder) so that `tfc compile` gives the same bytes wherever it runs.
import { format, type Options } from 'prettier';

export const hostPrettierOptions: Readonly<Options> = {
  parser: 'typescript',
  printWidth: 110,
  tabWidth: 2,
  useTabs: false,
  semi: true,
  singleQuote: true,
  quoteProps: 'as-needed',
  trailingComma: 'all',
  bracketSpacing: true,
  arrowParens: 'always',
  endOfLine: 'lf',
};

export async function formatTs(text: string): Promise<string> {
  return format(text, { ...hostPrettierOptions });
}
