// The page's elements (index.html) and the few ways main.ts changes them. Text from files, the
// model or the user only ever goes through textContent / text nodes, never innerHTML.
import type { LoadProgress } from 'tfc/runtime';

export const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`index.html has no #${id}`);
  return el as T;
};

export const field = (id: string): HTMLInputElement => $<HTMLInputElement>(id);

/** The page's state, as `<body data-state>`: what the e2e test and the screenshot wait for. */
export type PageState = 'idle' | 'loading' | 'ready' | 'generating' | 'done' | 'training' | 'trained' | 'error';

export function setState(s: PageState): void {
  document.body.dataset['state'] = s;
}

export function status(text: string): void {
  $('status').textContent = text;
}

/** Shows an error in the page (and the console); '' clears it. */
export function showError(headline: string, err?: unknown): void {
  const box = $('error');
  if (headline === '') {
    box.textContent = '';
    return;
  }
  console.error(headline, err);
  box.textContent = err === undefined ? headline : `${headline}: ${errorText(err)}`;
  setState('error');
}

/** An error's message with its diagnostic code (the runtime's RuntimeError carries TFC3xx). */
export function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? `error[${code}]: ${err.message}` : err.message;
}

type Bar = Exclude<LoadProgress['phase'], 'ready'>;
const bars: readonly Bar[] = ['download', 'compile', 'warmup', 'upload'];

function kib(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(0)} KiB`;
}

/** One bar per load phase; `ready` fills them all (a phase with nothing to do is complete). */
export function showProgress(p: LoadProgress): void {
  if (p.phase === 'ready') {
    for (const b of bars) {
      const bar = $<HTMLProgressElement>(`bar-${b}`);
      if (bar.value < bar.max) finish(b);
    }
    return;
  }
  const bar = $<HTMLProgressElement>(`bar-${p.phase}`);
  bar.max = Math.max(p.total, 1);
  bar.value = p.total > 0 ? p.done : 1;
  $(`amount-${p.phase}`).textContent = p.phase === 'download' ? `${kib(p.done)} / ${kib(p.total)}` : `${p.done} / ${p.total}`;
}

function finish(b: Bar): void {
  const bar = $<HTMLProgressElement>(`bar-${b}`);
  bar.value = bar.max;
  if ($(`amount-${b}`).textContent === '') $(`amount-${b}`).textContent = 'nothing to do';
}

export function resetProgress(): void {
  for (const b of bars) {
    const bar = $<HTMLProgressElement>(`bar-${b}`);
    bar.max = 1;
    bar.value = 0;
    $(`amount-${b}`).textContent = '';
  }
}

/** Clears the output box and returns a sink for streamed text after the bold prompt. */
export function startOutput(prompt: string): Text {
  const bold = document.createElement('span');
  bold.className = 'prompt';
  bold.textContent = prompt;
  const generated = document.createTextNode('');
  $('output').replaceChildren(bold, generated);
  return generated;
}
