// Hash routes: #/, #/join/CODE, #/group/ID, #/solo, #/experiments.

import { useEffect, useState } from 'preact/hooks';

export function go(path: string): void {
  location.hash = `#/${path}`;
}

export function useRoute(): string[] {
  const parse = () => location.hash.replace(/^#\/?/, '').split('/').filter(Boolean);
  const [route, setRoute] = useState(parse);
  useEffect(() => {
    const changed = () => setRoute(parse());
    window.addEventListener('hashchange', changed);
    return () => window.removeEventListener('hashchange', changed);
  }, []);
  return route;
}
