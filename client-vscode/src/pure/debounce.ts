// The client-side debounce of inline completion requests.

/** The minimal cancellation token shape (VS Code's and vscode-jsonrpc's both fit). */
export interface CancellationLike {
  readonly isCancellationRequested: boolean;
  onCancellationRequested(listener: () => unknown): { dispose(): unknown };
}

/**
 * Resolves true after `ms` milliseconds, or false as soon as `token` is cancelled (VS Code cancels
 * the previous inline completion request on every keystroke, so only the last one survives).
 */
export function delayUnlessCancelled(ms: number, token: CancellationLike): Promise<boolean> {
  if (token.isCancellationRequested) {
    return Promise.resolve(false);
  }
  if (ms <= 0) {
    return Promise.resolve(true);
  }
  return new Promise((resolve) => {
    const sub = token.onCancellationRequested(() => {
      clearTimeout(timer);
      sub.dispose();
      resolve(false);
    });
    const timer = setTimeout(() => {
      sub.dispose();
      resolve(!token.isCancellationRequested);
    }, ms);
  });
}

/** The debounce for one request: none when the user asked explicitly (Alt+\). */
export function debounceFor(settingMs: unknown, explicitlyInvoked: boolean): number {
  if (explicitlyInvoked) {
    return 0;
  }
  return typeof settingMs === "number" && Number.isFinite(settingMs) && settingMs > 0 ? Math.min(settingMs, 5000) : 0;
}
