// Urok's embedding script for journals (docs/embedding.md), served at /embed.js.
// A classic script, no build step: <script src="https://urok.school.example/embed.js">
// defines window.UrokCall (it also works when imported for its side effect).
//
//   const call = new UrokCall({
//     container: document.getElementById('lesson'),  // where the iframe goes
//     url: teacherUrl,                              // the call URL the journal API minted
//     lang: 'ru',                                   // optional: the page's language
//     onEvent: (name, data) => console.log(name, data),
//   });
//   call.on('joined', (data) => ...);  call.toggleMic();  call.hangUp();  call.dispose();
//
// Messages are taken only from the call's own iframe window at the call's
// origin, and commands are posted only to that origin, never '*'.
(function defineUrokCall(global) {
  'use strict';

  const ALLOW = 'camera; microphone; display-capture; fullscreen; autoplay';
  const HELLO_EVERY_MS = 500;
  const HELLO_TRIES = 20;

  function callUrl(url, lang) {
    const parsed = new URL(url, global.location.href);
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
      throw new Error('UrokCall: url must be an http(s) call URL');
    }
    if (lang) parsed.searchParams.set('lang', String(lang));
    return parsed;
  }

  class UrokCall {
    /**
     * container: an element (or its id); url: the call URL (with #token=…);
     * lang: 'ru' | 'en' (optional); onEvent(name, data): every event (optional);
     * title: the iframe's accessible name; width, height: CSS lengths (optional: else
     * the journal's stylesheet sizes the iframe).
     */
    constructor({
      container, url, lang = '', onEvent = null, title = 'Урок', width = '', height = '',
    }) {
      const parent = typeof container === 'string' ? document.getElementById(container) : container;
      if (!parent) throw new Error('UrokCall: container not found');
      const target = callUrl(url, lang);
      this.origin = target.origin;
      this.listeners = new Map();
      this.onEvent = typeof onEvent === 'function' ? onEvent : null;
      this.isReady = false; // a page in the frame has said 'ready'
      this.readySinceLoad = false;
      this.iframe = document.createElement('iframe');
      this.iframe.allow = ALLOW;
      this.iframe.allowFullscreen = true;
      this.iframe.title = title;
      this.iframe.style.border = '0';
      // Sized by the journal's stylesheet, or by these (CSS lengths) when given.
      if (width) this.iframe.style.width = String(width);
      if (height) this.iframe.style.height = String(height);
      this.receive = (event) => this.onMessage(event);
      global.addEventListener('message', this.receive);
      // Browsers that do not name the parent's origin to the page learn it from our hello.
      this.helloTries = 0;
      this.iframe.addEventListener('load', () => {
        // A new document in the frame (first load, a reload): greet it afresh.
        this.readySinceLoad = false;
        this.helloTries = 0;
        this.sayHello();
      });
      this.iframe.src = target.href;
      parent.replaceChildren(this.iframe);
    }

    sayHello() {
      clearTimeout(this.helloTimer);
      if (this.readySinceLoad || !this.iframe || this.helloTries >= HELLO_TRIES) return;
      this.helloTries += 1;
      this.command('hello');
      // Where the browser names the parent's origin to the page (ancestorOrigins),
      // the page needs no greeting: one is enough. Elsewhere, until it is ready.
      if ('ancestorOrigins' in global.location) return;
      this.helloTimer = setTimeout(() => this.sayHello(), HELLO_EVERY_MS);
    }

    onMessage(event) {
      if (!this.iframe || event.source !== this.iframe.contentWindow) return;
      if (event.origin !== this.origin) return;
      const data = event.data;
      if (!data || data.urok !== 'event' || typeof data.name !== 'string') return;
      if (data.name === 'ready') {
        this.isReady = true;
        this.readySinceLoad = true;
      }
      const payload = data.data && typeof data.data === 'object' ? data.data : {};
      if (this.onEvent) this.onEvent(data.name, payload);
      for (const fn of this.listeners.get(data.name) || []) fn(payload);
    }

    /** Listen for one event ('joined', 'participantJoined', …); returns a function that stops. */
    on(name, fn) {
      if (!this.listeners.has(name)) this.listeners.set(name, new Set());
      this.listeners.get(name).add(fn);
      return () => this.off(name, fn);
    }

    off(name, fn) {
      const set = this.listeners.get(name);
      if (set) set.delete(fn);
    }

    /** Send a command by name (see docs/embedding.md); errors come back as 'error' events. */
    command(name, args = {}) {
      if (!this.iframe || !this.iframe.contentWindow) return;
      this.iframe.contentWindow.postMessage({ urok: 'command', name, args }, this.origin);
    }

    hangUp() { this.command('hangUp'); }

    endLesson() { this.command('endLesson'); }

    muteAll() { this.command('muteAll'); }

    toggleMic() { this.command('toggleMic'); }

    toggleCamera() { this.command('toggleCamera'); }

    openChat() { this.command('openChat'); }

    closeChat() { this.command('closeChat'); }

    startRecording(options = {}) { this.command('startRecording', options); }

    stopRecording() { this.command('stopRecording'); }

    setDisplayName(name) { this.command('setDisplayName', { name }); }

    /** Remove the iframe (the page says goodbye to the server as it unloads) and stop listening. */
    dispose() {
      clearTimeout(this.helloTimer);
      global.removeEventListener('message', this.receive);
      if (this.iframe) this.iframe.remove();
      this.iframe = null;
      this.listeners.clear();
    }
  }

  global.UrokCall = UrokCall;
}(window));
