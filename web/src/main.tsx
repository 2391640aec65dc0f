// The app shell: a hash router (#/, #/join/CODE, #/group/ID, #/solo, #/experiments), the
// listener's session, and the home page that starts or joins a group.

import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

import { api, errorText, forgetSession, loadSession, Session, signUp } from './api';
import { Dashboard } from './dashboard';
import { GroupRoom } from './group';
import { go, useRoute } from './router';
import { Solo } from './solo';

/// Asks for a display name the first time a page needs an account.
function NameGate(props: { onSession: (s: Session) => void; purpose: string }) {
  const [name, setName] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      props.onSession(await signUp(name.trim()));
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card narrow" onSubmit={submit}>
      <h2>What should friends call you?</h2>
      <p class="muted">{props.purpose}</p>
      <label for="display-name">Your name</label>
      <input id="display-name" value={name} maxLength={64} required autoFocus
        onInput={(e) => setName((e.target as HTMLInputElement).value)} />
      {error && <p class="error" role="alert">{error}</p>}
      <button type="submit" class="primary" disabled={busy || !name.trim()}>
        {busy ? 'Creating…' : 'Continue'}
      </button>
    </form>
  );
}

function Home(props: { session: Session | null; onSession: (s: Session) => void; code?: string }) {
  const [groupName, setGroupName] = useState('');
  const [code, setCode] = useState(props.code ?? '');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const [waiting, setWaiting] = useState('');
  const retry = useRef<number | undefined>(undefined);
  useEffect(() => () => window.clearTimeout(retry.current), []);
  const session = props.session;
  if (!session) {
    return <NameGate onSession={props.onSession}
      purpose={props.code ? `You are joining group ${props.code}.` : 'Chorus remembers you on this device; no password needed.'} />;
  }
  const create = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      const created = await api<{ group_id: string }>('POST', '/api/v1/groups', {
        body: { name: groupName.trim() || `${session.name}'s room` },
        token: session.token,
      });
      go(`group/${created.group_id}`);
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  };
  // In a room whose host approves newcomers, the answer is `pending` until the host lets us
  // in: ask again every few seconds while the page says so.
  const join = async (e?: Event) => {
    e?.preventDefault();
    setBusy(true);
    setError('');
    try {
      const joined = await api<{ group_id: string; name: string; status: string }>('POST', '/api/v1/groups/join', {
        body: { join_code: code },
        token: session.token,
      });
      if (joined.status === 'pending') {
        setWaiting(joined.name);
        window.clearTimeout(retry.current);
        retry.current = window.setTimeout(() => void join(), 3000);
        return;
      }
      setWaiting('');
      go(`group/${joined.group_id}`);
    } catch (err) {
      setWaiting('');
      setError(errorText(err));
      setBusy(false);
    }
  };
  if (waiting) {
    return (
      <div class="card narrow" role="status" aria-live="polite" data-testid="waiting">
        <h2>Waiting for the host</h2>
        <p>You asked to join <strong>{waiting}</strong>. The host will let you in shortly.</p>
        <button class="quiet" onClick={() => { window.clearTimeout(retry.current); setWaiting(''); setBusy(false); }}>Cancel</button>
      </div>
    );
  }
  return (
    <div class="home">
      <section class="hero">
        <h1>Play it together.</h1>
        <p>Open a room, share the code, and build the playlist live. Chorus keeps suggesting tracks the whole room will like, and tells you why.</p>
      </section>
      <div class="columns">
        <form class="card" onSubmit={create} aria-labelledby="start-title">
          <h2 id="start-title">Start a group</h2>
          <label for="group-name">Room name</label>
          <input id="group-name" placeholder={`${session.name}'s room`} maxLength={80} value={groupName}
            onInput={(e) => setGroupName((e.target as HTMLInputElement).value)} />
          <button type="submit" class="primary" disabled={busy}>Start the room</button>
        </form>
        <form class="card" onSubmit={join} aria-labelledby="join-title">
          <h2 id="join-title">Join with a code</h2>
          <label for="join-code">Six-character code</label>
          <input id="join-code" class="code-input" placeholder="ABC123" maxLength={12} value={code} required
            autoFocus={!!props.code} onInput={(e) => setCode((e.target as HTMLInputElement).value)} />
          <button type="submit" class="primary" disabled={busy || !code.trim()}>Join</button>
        </form>
      </div>
      {error && <p class="error" role="alert">{error}</p>}
      <p class="muted center">Listening alone? <a href="#/solo">Get personal recommendations</a>.</p>
    </div>
  );
}

function App() {
  const route = useRoute();
  const [session, setSession] = useState<Session | null>(loadSession);
  const [page, arg] = route;
  let body;
  if (page === 'experiments') {
    body = <Dashboard />;
  } else if (!session) {
    body = <Home session={null} onSession={setSession} code={page === 'join' ? arg : undefined} />;
  } else if (page === 'group' && arg) {
    body = <GroupRoom key={arg} session={session} groupId={arg} />;
  } else if (page === 'solo') {
    body = <Solo session={session} />;
  } else {
    body = <Home session={session} onSession={setSession} code={page === 'join' ? arg : undefined} />;
  }
  const signOut = () => {
    forgetSession();
    setSession(null);
    go('');
  };
  return (
    <>
      <header class="topbar">
        <a class="brand" href="#/" aria-label="Chorus home">♪ Chorus</a>
        <nav aria-label="Main">
          <a href="#/" aria-current={!page || page === 'group' || page === 'join' ? 'page' : undefined}>Rooms</a>
          <a href="#/solo" aria-current={page === 'solo' ? 'page' : undefined}>Solo</a>
          <a href="#/experiments" aria-current={page === 'experiments' ? 'page' : undefined}>Experiments</a>
        </nav>
        {session && (
          <span class="who">
            {session.name} <button class="link" onClick={signOut}>Sign out</button>
          </span>
        )}
      </header>
      <main id="main">{body}</main>
    </>
  );
}

const root = document.getElementById('app')!;
root.textContent = '';
render(<App />, root);
