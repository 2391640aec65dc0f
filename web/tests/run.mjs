// Browser tests: Debian's Chromium driven by playwright-core against the real server. Two
// listeners share a room (adds, votes and host reorder propagate; a server restart mid-session
// resumes without losing or duplicating entries), the solo page learns from likes, and the
// dashboard shows what the API reports. Screenshots of every page go to tests/artifacts/browser.

import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

import { ADMIN_TOKEN, ChorusServer } from './server.mjs';

const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const ARTIFACTS = join(ROOT, 'tests/artifacts/browser');
mkdirSync(ARTIFACTS, { recursive: true });

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function signUp(page, name) {
  await page.fill('#display-name', name);
  await page.click('button:has-text("Continue")');
}

/// Entry track ids in playlist order, as a page shows them.
async function playlist(page) {
  return page.$$eval('.playlist li.entry', (items) => items.map((li) => li.dataset.track));
}

async function addBySearch(page, query) {
  await page.fill('#track-search', query);
  const first = page.locator('.search .results li:not(:has(button:disabled))').first();
  await first.waitFor({ timeout: 5_000 });
  const id = await first.getAttribute('data-track');
  await first.locator('button').click();
  return id;
}

/// Asserts the page fits its viewport: no horizontal scrolling, the header spans the screen.
async function noSidewaysScroll(page, who) {
  const widths = await page.evaluate(() => {
    const wide = [...document.querySelectorAll('body *')]
      .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 0.5)
      .slice(0, 6)
      .map((el) => `${el.tagName.toLowerCase()}.${el.className} right=${Math.round(el.getBoundingClientRect().right)}`);
    return {
      page: document.documentElement.scrollWidth,
      view: window.innerWidth,
      header: document.querySelector('.topbar').getBoundingClientRect().width,
      wide,
    };
  });
  assert(widths.page <= widths.view, `${who}: no sideways scrolling at ${widths.view} px, page is ${widths.page} px (${widths.wide.join('; ')})`);
  assert(widths.header >= widths.view - 1, `${who}: the header spans the screen (${widths.header} px)`);
}

const results = [];
let pa;
let pb;
let restarting = false;
async function test(name, body) {
  const started = Date.now();
  try {
    await body();
    results.push({ name, ok: true });
    console.error(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    results.push({ name, ok: false, error });
    if (restarting) {
      restarting = false;
      await server.start();
    }
    for (const [who, page] of [['a', pa], ['b', pb]]) {
      await page?.screenshot({ path: join(ARTIFACTS, `failed-${results.length}-${who}.png`) }).catch(() => {});
    }
    console.error(`FAIL ${name}: ${error.stack ?? error}`);
  }
}

const server = new ChorusServer(ARTIFACTS);
await server.start();
const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
const errors = [];
async function context(viewport = { width: 1280, height: 860 }) {
  const ctx = await browser.newContext({ viewport });
  ctx.on('page', (p) => p.on('pageerror', (e) => errors.push(`${e}`)));
  return ctx;
}

const a = await context();
const b = await context();
pa = await a.newPage();
pb = await b.newPage();
let code = '';

await test('a host starts a room and a friend joins by share link', async () => {
  await pa.goto(`${server.url}/`);
  await shot(pa, '01-welcome');
  await signUp(pa, 'Ada');
  await pa.waitForSelector('#group-name');
  await shot(pa, '02-home');
  await pa.fill('#group-name', 'Friday night');
  await pa.click('button:has-text("Start the room")');
  await pa.waitForSelector('[data-testid=join-code]');
  code = (await pa.textContent('[data-testid=join-code]')).trim();
  assert(/^[A-Z0-9]{6}$/.test(code), `a six-character code, got ${code}`);
  await pa.waitForSelector('.recs .rec-list li');

  await pb.goto(`${server.url}/#/join/${code}`);
  await signUp(pb, 'Ben');
  await pb.waitForSelector('#join-code');
  assert((await pb.inputValue('#join-code')) === code, 'the share link fills in the code');
  await shot(pb, '03-join');
  await pb.click('button:has-text("Join")');
  await pb.waitForSelector('[data-testid=join-code]');
  await pa.waitForSelector('.members li:has-text("Ben") .dot.online', { timeout: 5_000 });
});

await test('a track one member adds appears for the other within a second', async () => {
  const id = await addBySearch(pa, 'love');
  const sent = Date.now();
  await pb.waitForSelector(`.playlist li.entry[data-track="${id}"]`, { timeout: 1_000 });
  const elapsed = Date.now() - sent;
  console.error(`     seen by the other member after ${elapsed} ms`);
  assert((await pb.textContent(`.playlist li.entry[data-track="${id}"] .added`)).includes('Ada'), 'who added it');
});

await test('votes and the host reorder propagate', async () => {
  const [first] = await playlist(pa);
  await pb.click(`.playlist li.entry[data-track="${first}"] button[aria-label="Vote up"]`);
  await pa.waitForFunction(
    (id) => document.querySelector(`.playlist li.entry[data-track="${id}"] .score`)?.textContent === '1',
    first,
    { timeout: 2_000 },
  );
  const second = await addBySearch(pa, 'rock');
  await pb.waitForSelector(`.playlist li.entry[data-track="${second}"]`, { timeout: 2_000 });
  await pa.click(`.playlist li.entry[data-track="${second}"] button[aria-label="Move up"]`);
  // Each page applies the move when its own copy of the event arrives, so wait for both.
  for (const page of [pb, pa]) {
    await page.waitForFunction(
      ([s, f]) => {
        const ids = [...document.querySelectorAll('.playlist li.entry')].map((li) => li.dataset.track);
        return ids[0] === s && ids[1] === f;
      },
      [second, first],
      { timeout: 2_000 },
    );
  }
  assert(
    JSON.stringify(await playlist(pa)) === JSON.stringify(await playlist(pb)),
    'both members see the same order',
  );
  await pb.click(`.recs .rec-list li >> nth=0 >> button:has-text("Why?")`);
  await pb.waitForSelector('.recs .why[data-done="true"]', { timeout: 5_000 });
  const why = await pb.textContent('.recs .why');
  assert(why.length > 40, `an explanation, got ${why}`);
  await shot(pa, '04-room-host');
  await shot(pb, '05-room-guest-with-why');
});

await test('a server restart mid-session resumes without losing or duplicating entries', async () => {
  const before = await playlist(pa);
  await server.stop();
  restarting = true;
  await pa.waitForSelector('.banner[data-status=reconnecting]', { timeout: 15_000 });
  await pb.waitForSelector('.banner[data-status=reconnecting]', { timeout: 15_000 });
  await shot(pb, '06-reconnecting');
  // A vote cast while the server is down is sent once the room is back.
  await pb.click(`.playlist li.entry[data-track="${before[0]}"] button[aria-label="Vote down"]`);
  await server.start();
  restarting = false;
  await pa.waitForSelector('.banner', { state: 'detached', timeout: 30_000 });
  await pb.waitForSelector('.banner', { state: 'detached', timeout: 30_000 });
  await pa.waitForFunction(
    (id) => document.querySelector(`.playlist li.entry[data-track="${id}"] .score`)?.textContent === '-1',
    before[0],
    { timeout: 5_000 },
  );
  const third = await addBySearch(pa, 'night');
  await pb.waitForSelector(`.playlist li.entry[data-track="${third}"]`, { timeout: 2_000 });
  const after = await playlist(pb);
  assert(JSON.stringify(after) === JSON.stringify([...before, third]), `nothing lost or doubled: ${after}`);
  assert(new Set(after).size === after.length, 'no duplicates');
  assert(JSON.stringify(await playlist(pa)) === JSON.stringify(after), 'both see the same playlist');
});

await test('the room plays one track for everyone, in sync, and a skip vote moves it on', async () => {
  const queued = await playlist(pa);
  await pb.waitForSelector('[data-testid=now-playing].idle :text("The host starts the music")');
  await pa.click('[data-testid=now-playing] button:has-text("Play")');
  const playing = (page) => page.getAttribute('[data-testid=now-playing]', 'data-track');
  // Both get the same event; either may fold it a moment before the other.
  for (const page of [pb, pa]) {
    await page.waitForSelector(`[data-testid=now-playing][data-track="${queued[0]}"][data-state=playing]`, { timeout: 2_000 });
  }
  assert((await playing(pa)) === queued[0], 'the host hears the same track');
  // The position moves on by itself, and both pages agree on it within a second.
  await pa.waitForTimeout(2_200);
  const seconds = (page) => page.getAttribute('[data-testid=now-playing] [role=progressbar]', 'aria-valuenow').then(Number);
  const [ta, tb] = [await seconds(pa), await seconds(pb)];
  assert(ta >= 2 && Math.abs(ta - tb) <= 1, `positions in sync: host ${ta} s, guest ${tb} s`);
  await shot(pb, '06b-now-playing-guest');
  // Two online members: the guest's one skip vote is enough.
  await pb.click('[data-testid=now-playing] button:has-text("Vote to skip")');
  await pa.waitForSelector(`[data-testid=now-playing][data-track="${queued[1]}"]`, { timeout: 2_000 });
  await pb.waitForSelector(`[data-testid=now-playing][data-track="${queued[1]}"]`, { timeout: 2_000 });
  await pb.click('.history summary');
  assert((await pb.textContent('.history')).includes('skipped by vote'), 'the history says why it ended');
  await pa.click('[data-testid=now-playing] button[aria-label="Pause"]');
  await pb.waitForSelector('[data-testid=now-playing][data-state=paused]', { timeout: 2_000 });
  await pa.click('[data-testid=now-playing] button[aria-label="Play"]');
  await pb.waitForSelector('[data-testid=now-playing][data-state=playing]', { timeout: 2_000 });
  await shot(pa, '06c-now-playing-host');
});

await test('the host connects Spotify, the room plays on their device, a skip vote moves it, and the list is saved', async () => {
  await pa.click('[data-testid=spotify] button:has-text("Connect Spotify")');
  // Spotify's page (the stand-in signs in at once) sends the browser back to the room.
  await pa.waitForSelector('[data-testid=spotify][data-state=connected]', { timeout: 15_000 });
  assert((await pa.textContent('.toast')).includes('Spotify is connected'), 'the page says so');
  await pa.waitForSelector('#spotify-device option[value="standin-speaker"]', { state: 'attached', timeout: 5_000 });
  await pa.selectOption('#spotify-device', 'standin-speaker');
  await pb.waitForSelector('[data-testid=now-playing] .label:has-text("Living room speaker")', { timeout: 5_000 });
  const playingOn = async (track) => {
    const deadline = Date.now() + 8_000;
    for (;;) {
      const state = await server.standinControl('state');
      if (state.player?.track_id === track && state.player?.is_playing) return;
      if (Date.now() > deadline) throw new Error(`the device never played ${track}: ${JSON.stringify(state.player)}`);
      await pa.waitForTimeout(200);
    }
  };
  const current = await pa.getAttribute('[data-testid=now-playing]', 'data-track');
  await playingOn(current);
  const added = await addBySearch(pa, 'sun');
  await pb.waitForSelector(`.playlist li.entry[data-track="${added}"]`, { timeout: 2_000 });
  const [next] = await playlist(pb);
  await pb.click('[data-testid=now-playing] button:has-text("Vote to skip")');
  await pa.waitForSelector(`[data-testid=now-playing][data-track="${next}"]`, { timeout: 3_000 });
  await playingOn(next);
  await pa.click('[data-testid=spotify] button:has-text("Save to Spotify")');
  await pa.waitForSelector('[data-testid=saved]', { timeout: 5_000 });
  const state = await server.standinControl('state');
  const lists = Object.values(state.playlists);
  assert(lists.length === 1 && lists[0].uris.includes(`spotify:track:${next}`), `one playlist with the room's tracks: ${JSON.stringify(lists)}`);
  // The device goes away: the room says so and plays on.
  await server.standinControl('account', { devices: [] });
  await pa.click('[data-testid=now-playing] button[aria-label="Pause"]');
  await pb.waitForSelector('[data-testid=playback-issue][data-code=spotify_no_device]', { timeout: 5_000 });
  await shot(pb, '06d-spotify-device-gone-guest');
  await server.standinControl('account', { devices: [['standin-speaker', 'Living room speaker']] });
  await pa.click('[data-testid=now-playing] button[aria-label="Play"]');
  await pb.waitForSelector('[data-testid=playback-issue]', { state: 'detached', timeout: 8_000 });
  // The opt-in import (this test server allows it): what the catalog has becomes likes.
  await server.standinControl('account', { top_tracks: [next, current, '0000000000000000000000'] });
  await pa.click('[data-testid=spotify] button:has-text("top and saved tracks")');
  await pa.waitForSelector('[data-testid=imported]', { timeout: 5_000 });
  const imported = await pa.textContent('[data-testid=imported]');
  assert(imported.includes('2 of your 3') && imported.includes('1 are not'), `import outcome: ${imported}`);
  await shot(pa, '06e-spotify-host');
});

await test('now playing survives a server restart, the same for both listeners', async () => {
  const before = await pa.getAttribute('[data-testid=now-playing]', 'data-track');
  await server.stop();
  restarting = true;
  await pb.waitForSelector('.banner[data-status=reconnecting]', { timeout: 15_000 });
  await server.start();
  restarting = false;
  await pa.waitForSelector('.banner', { state: 'detached', timeout: 30_000 });
  await pb.waitForSelector('.banner', { state: 'detached', timeout: 30_000 });
  for (const page of [pa, pb]) {
    await page.waitForSelector(`[data-testid=now-playing][data-track="${before}"][data-state=playing]`, { timeout: 5_000 });
  }
});

await test('the room works on a phone-sized screen', async () => {
  const phone = await context({ width: 390, height: 844 });
  const page = await phone.newPage();
  await page.goto(`${server.url}/`);
  await signUp(page, 'Pia');
  await page.fill('#join-code', code);
  await page.click('button:has-text("Join")');
  await page.waitForSelector('.playlist li.entry');
  await page.waitForSelector('.recs .rec-list li');
  await shot(page, '07-room-phone');
  await noSidewaysScroll(page, 'a guest');
  // The host's view has more controls per row (reorder, remove, members, who can join).
  await pa.setViewportSize({ width: 390, height: 844 });
  await pa.click('button:has-text("QR code")');
  await shot(pa, '07b-room-phone-host');
  await noSidewaysScroll(pa, 'the host');
  await pa.click('button:has-text("QR code")');
  await pa.setViewportSize({ width: 1280, height: 860 });
  await phone.close();
});

await test('a host who approves newcomers lets a friend in', async () => {
  await pa.selectOption('#admission', 'approval');
  await pa.waitForSelector('.room-header :text("the host lets people in")');
  const guest = await context();
  const page = await guest.newPage();
  await page.goto(`${server.url}/#/join/${code}`);
  await signUp(page, 'Cleo');
  await page.click('button:has-text("Join")');
  await page.waitForSelector('[data-testid=waiting]');
  await shot(page, '08-waiting-for-the-host');
  await pa.waitForSelector('.pending li:has-text("Cleo")', { timeout: 5_000 });
  await shot(pa, '09-host-sees-request');
  await pa.click('.pending li:has-text("Cleo") button:has-text("Let in")');
  await page.waitForSelector('[data-testid=join-code]', { timeout: 10_000 });
  await pa.waitForSelector('.members li:has-text("Cleo")', { timeout: 5_000 });
  await pa.selectOption('#admission', 'open');
  await guest.close();
});

await test('solo recommendations change after likes and the taste chart appears', async () => {
  const solo = await context();
  const page = await solo.newPage();
  await page.goto(`${server.url}/#/solo`);
  await signUp(page, 'Cleo');
  await page.waitForSelector('.solo-list li.entry');
  assert((await page.textContent('[data-testid=strategy]')).includes('no taste'), 'starts cold');
  const initial = await page.$$eval('.solo-list li.entry', (l) => l.map((li) => li.dataset.track));
  for (let i = 0; i < 3; i += 1) {
    const liked = await page.getAttribute('.solo-list li.entry >> nth=0', 'data-track');
    await page.click('.solo-list li.entry >> nth=0 >> button.like');
    await page.waitForFunction(
      (id) => !document.querySelector(`.solo-list li.entry[data-track="${id}"]`),
      liked,
      { timeout: 10_000 },
    );
  }
  const strategy = await page.textContent('[data-testid=strategy]');
  assert(!strategy.includes('no taste'), `personal now: ${strategy}`);
  const now = await page.$$eval('.solo-list li.entry', (l) => l.map((li) => li.dataset.track));
  assert(JSON.stringify(now) !== JSON.stringify(initial), 'the list changed');
  await page.waitForSelector('[data-testid=taste-radar]', { state: 'visible' });
  const pairBefore = await page.textContent('.pair');
  await page.click('.pair button[data-side=a]');
  await page.waitForFunction((old) => document.querySelector('.pair')?.textContent !== old, pairBefore, {
    timeout: 10_000,
  });
  const shown = await page.$('.solo .error');
  assert(shown === null, `no error after answering a pair: ${shown && (await shown.textContent())}`);
  await shot(page, '08-solo');
  await solo.close();
});

await test('the dashboard shows the same numbers as the API', async () => {
  await server.api('POST', '/api/v1/experiments', {
    name: 'NCF vs hybrid',
    variants: [{ name: 'control', strategy: 'hybrid' }, { name: 'ncf', strategy: 'ncf' }],
    primary_metric: 'like_rate',
  }, ADMIN_TOKEN);
  // Before any listener: the dashboard says what it is waiting for.
  const early = await context({ width: 1280, height: 1000 });
  const earlyPage = await early.newPage();
  await earlyPage.goto(`${server.url}/#/experiments`);
  await earlyPage.fill('#admin-token', ADMIN_TOKEN);
  await earlyPage.click('button:has-text("Open the dashboard")');
  await earlyPage.waitForSelector('[data-testid=ab-report][data-ready=false] [data-waiting-variant=ncf]');
  await shot(earlyPage, '10-dashboard-waiting');
  await early.close();
  const tracks = (await server.api('GET', '/api/v1/tracks?q=love&limit=20')).items;
  // Listeners until both variants have some (assignment is a hash of the user id).
  const seen = new Set();
  for (let i = 0; i < 8 || (seen.size < 2 && i < 17); i += 1) {
    const user = await server.api('POST', '/api/v1/users', { display_name: `Listener ${i}` });
    for (const t of tracks.slice(i, i + 3)) {
      await server.api('POST', '/api/v1/feedback', { track_id: t.id, kind: 'like' }, user.token);
    }
    const list = await server.api('POST', '/api/v1/recommendations', { limit: 5 }, user.token);
    seen.add(list.variant);
    if (i % 2 === 0) {
      await server.api('POST', '/api/v1/feedback', {
        track_id: list.items[0].track.id, kind: 'like', request_id: list.request_id,
      }, user.token);
    }
  }
  const dash = await context({ width: 1280, height: 1000 });
  const page = await dash.newPage();
  await page.goto(`${server.url}/#/experiments`);
  await page.fill('#admin-token', ADMIN_TOKEN);
  await page.click('button:has-text("Open the dashboard")');
  await page.waitForSelector('[data-testid=ab-report] tr[data-variant]');
  await page.waitForSelector('.bandit tr[data-arm]');
  const [{ items }, bandits] = await Promise.all([
    server.api('GET', '/api/v1/experiments', undefined, ADMIN_TOKEN),
    server.api('GET', '/api/v1/analytics/bandit', undefined, ADMIN_TOKEN),
  ]);
  const report = await server.api('GET', `/api/v1/analytics/ab/${items[0].id}`, undefined, ADMIN_TOKEN);
  for (const row of report.primary.variants) {
    await page.waitForFunction(
      ([name, trials]) => document.querySelector(`tr[data-variant="${name}"] [data-col=trials]`)?.textContent === String(trials),
      [row.name, row.trials],
      { timeout: 10_000 },
    );
    const rate = await page.textContent(`tr[data-variant="${row.name}"] [data-col=rate]`);
    assert(rate === `${(row.rate * 100).toFixed(2)}%`, `${row.name} rate ${rate} vs ${row.rate}`);
  }
  // Each bandit shows its busiest context first: prior, pulls and posterior mean as the API says.
  for (const bandit of bandits.bandits) {
    const busiest = [...bandit.contexts].sort(
      (x, y) => y.arms.reduce((n, a) => n + a.pulls, 0) - x.arms.reduce((n, a) => n + a.pulls, 0),
    )[0];
    await page.waitForSelector(`.bandit[data-bandit="${bandit.bandit}"][data-context="${busiest.context}"]`);
    for (const arm of busiest.arms) {
      const cell = `.bandit[data-bandit="${bandit.bandit}"] tr[data-arm="${arm.name}"]`;
      assert((await page.textContent(`${cell} [data-col=pulls]`)) === String(arm.pulls), `${arm.name} pulls`);
      assert(
        (await page.textContent(`${cell} [data-col=prior]`)) === `${(arm.prior.mean * 100).toFixed(2)}%`,
        `${arm.name} prior`,
      );
    }
  }
  // The busiest solo context has a history the server recorded, plotted.
  await page.waitForSelector('.bandit[data-bandit="solo_strategy"] [data-testid=bandit-history] canvas', {
    timeout: 20_000,
  });
  await page.waitForTimeout(500);
  await shot(page, '09-dashboard');
  // Another context is one click away; with no lists shown there, the prior alone decides.
  const solo = '.bandit[data-bandit="solo_strategy"]';
  const other = bandits.bandits[0].contexts.find((c) => c.arms.every((a) => a.pulls === 0)).context;
  await page.click(`${solo} [data-context-tab="${other}"]`);
  await page.waitForSelector(`${solo}[data-context="${other}"]`);
  await page.waitForSelector(`${solo} [data-testid=no-history]`);
  await shot(page, '09b-dashboard-other-context');
  await dash.close();
});

await test('three listeners with different tastes each get tracks for them, and harmony rises as they converge', async () => {
  const fans = [
    ['Mo', ['Metallica', 'AC/DC', 'Iron Maiden', 'Black Sabbath', "Guns N' Roses"]],
    ['Rey', ['Bad Bunny', 'J Balvin', 'Daddy Yankee', 'Ozuna', 'Anuel AA']],
    ['Eddie', ['Avicii', 'Martin Garrix', 'Hardwell', 'Tiësto', 'Armin van Buuren']],
  ];
  const byArtist = async (artist, n) =>
    (await server.api('GET', `/api/v1/tracks?q=${encodeURIComponent(artist)}&limit=20`)).items
      .filter((t) => t.artist === artist)
      .slice(0, n);
  const sessions = [];
  for (const [name, artists] of fans) {
    const user = await server.api('POST', '/api/v1/users', { display_name: name });
    for (const artist of artists) {
      for (const t of await byArtist(artist, 3)) {
        await server.api('POST', '/api/v1/feedback', { track_id: t.id, kind: 'like' }, user.token);
      }
    }
    sessions.push({ userId: user.user_id, name: user.display_name, token: user.token });
  }
  const room = await server.api('POST', '/api/v1/groups', { name: 'Three tastes' }, sessions[0].token);
  for (const s of sessions.slice(1)) {
    await server.api('POST', '/api/v1/groups/join', { join_code: room.join_code }, s.token);
  }
  const pages = [];
  for (const [i, session] of sessions.entries()) {
    const ctx = await context(i === 1 ? { width: 390, height: 844 } : { width: 1280, height: 1000 });
    await ctx.addInitScript((s) => {
      // Also runs on about:blank, where storage is off limits.
      if (location.protocol.startsWith('http')) localStorage.setItem('chorus.session', JSON.stringify(s));
    }, session);
    const page = await ctx.newPage();
    await page.goto(`${server.url}/#/group/${room.group_id}`);
    pages.push([ctx, page]);
  }
  const shares = [];
  for (const [i, [, page]] of pages.entries()) {
    await page.waitForSelector('[data-testid=your-share]', { timeout: 15_000 });
    const text = await page.textContent('[data-testid=your-share]');
    const mine = Number(/^(\d+) of these/.exec(text)?.[1] ?? 0);
    shares.push(mine);
    assert(mine >= 2, `${fans[i][0]} sees "${text}"`);
  }
  const least = async (page) =>
    Number(await page.getAttribute('.harmony .bar[role=meter] >> nth=0', 'aria-valuenow'));
  const divergent = await least(pages[0][1]);
  assert(divergent < 90, `least happy member ${divergent}% in a divergent room`);
  console.error(`     shares ${shares.join(' / ')}, least happy member ${divergent}%`);
  await shot(pages[0][1], '11-three-tastes');
  await shot(pages[1][1], '12-three-tastes-phone');
  // Rey and Eddie come round to metal: the room's harmony rises.
  for (const s of sessions.slice(1)) {
    for (const artist of fans[0][1]) {
      for (const t of await byArtist(artist, 6)) {
        await server.api('POST', '/api/v1/feedback', { track_id: t.id, kind: 'like' }, s.token);
      }
    }
  }
  await pages[0][1].waitForFunction(
    (before) => Number(document.querySelector('.harmony .bar[role=meter]')?.getAttribute('aria-valuenow')) > before + 10,
    divergent,
    { timeout: 15_000 },
  );
  console.error(`     after converging: least happy member ${await least(pages[0][1])}%`);
  await shot(pages[0][1], '13-three-tastes-converged');
  for (const [ctx] of pages) await ctx.close();
});

await test('a room list that falls behind says it is updating, then updates', async () => {
  // Lists at most every 4 s: the list after an add is late on purpose.
  await server.stop();
  server.extraConfig = '[realtime]\nrecommend_interval_ms = 4000\n';
  await server.start();
  try {
    const user = await server.api('POST', '/api/v1/users', { display_name: 'Lena' });
    const liked = (await server.api('GET', '/api/v1/tracks?q=Metallica&limit=5')).items;
    for (const t of liked) {
      await server.api('POST', '/api/v1/feedback', { track_id: t.id, kind: 'like' }, user.token);
    }
    const room = await server.api('POST', '/api/v1/groups', { name: 'Slow lists' }, user.token);
    const ctx = await context({ width: 390, height: 844 });
    const session = { userId: user.user_id, name: user.display_name, token: user.token };
    await ctx.addInitScript((s) => {
      if (location.protocol.startsWith('http')) localStorage.setItem('chorus.session', JSON.stringify(s));
    }, session);
    const page = await ctx.newPage();
    await page.goto(`${server.url}/#/group/${room.group_id}`);
    await page.waitForSelector('.rec-list li button:not(.link)', { timeout: 15_000 });
    const notice = page.locator('.recs .updating');
    assert((await notice.textContent()) === '', 'no notice while the list is current');
    const first = await page.getAttribute('.rec-list li >> nth=0', 'data-track');
    await page.click('.rec-list li >> nth=0 >> button:not(.link)');
    await page.waitForFunction(
      () => document.querySelector('.recs .updating')?.textContent === 'Updating for the latest changes…',
      undefined,
      { timeout: 4_000 },
    );
    await shot(page, '14-list-updating-phone');
    // The next list comes, without the added track, and the notice goes.
    await page.waitForFunction(
      (added) => document.querySelector('.recs .updating')?.textContent === ''
        && !document.querySelector(`.rec-list li[data-track="${added}"]`),
      first,
      { timeout: 10_000 },
    );
    await ctx.close();
  } finally {
    await server.stop();
    server.extraConfig = '';
    await server.start();
  }
});

await test('no page threw an uncaught error', async () => {
  assert(errors.length === 0, errors.join('\n'));
});

await browser.close();
await server.stop();
server.stopStandin();
const failed = results.filter((r) => !r.ok);
console.error(`browser tests: ${results.length - failed.length} passed, ${failed.length} failed; screenshots in ${ARTIFACTS}`);
process.exit(failed.length ? 1 : 0);
