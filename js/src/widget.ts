/**
 * The anywidget module of `ChatWidget`: default export `{ initialize, render }`,
 * each returning a cleanup function.
 *
 * `initialize` runs once per model and owns the chat logic (a
 * {@link ChatController}); `render` runs once per view and draws it.  anywidget
 * hands each call its own model proxy, so the controller is found again through
 * an object that is the same for every proxy of one model: its `layout` (a
 * per-widget LayoutModel in ipywidgets).  Without one (other hosts), each view
 * runs its own controller.
 */

import { ChatController } from "./controller";
import { createMarkdown, type MarkdownToHtml, type WindowLike } from "./markdown";
import type { ChatState, Model } from "./model";
import { animationFrames } from "./render";
import { ChatView } from "./view";

export type { ChatState, Message, Model, Timing, TimingEvent } from "./model";

const controllers = new WeakMap<object, ChatController>();

/** An object identical for every proxy of one model, or null. */
function identity(model: Model): object | null {
  const layout = (model as unknown as Model<Record<string, unknown>>).get("layout");
  return typeof layout === "object" && layout !== null ? layout : null;
}

let markdown: MarkdownToHtml | null = null;

/** One Markdown renderer per page (DOMPurify needs the window). */
function pageMarkdown(win: Window): MarkdownToHtml {
  markdown ??= createMarkdown(win as unknown as WindowLike);
  return markdown;
}

function initialize({ model }: { model: Model<ChatState> }): () => void {
  const key = identity(model);
  if (key === null) return () => undefined;
  const controller = new ChatController(model, { handleCustomMessages: true });
  controllers.set(key, controller);
  return () => {
    controller.dispose();
    if (controllers.get(key) === controller) controllers.delete(key);
  };
}

function render({ model, el }: { model: Model<ChatState>; el: HTMLElement }): () => void {
  const key = identity(model);
  let controller = key === null ? undefined : controllers.get(key);
  let owned: ChatController | null = null;
  if (controller === undefined) {
    // Commands from Python only where no initialize-time controller can exist,
    // so that they never run twice.
    owned = new ChatController(model, { handleCustomMessages: key === null });
    controller = owned;
  }
  const win = el.ownerDocument.defaultView ?? window;
  const view = new ChatView(el, model, controller, {
    markdown: pageMarkdown(win),
    scheduler: animationFrames(win),
  });
  return () => {
    view.dispose();
    owned?.dispose();
  };
}

export default { initialize, render };
