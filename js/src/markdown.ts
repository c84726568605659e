/**
 * Markdown → sanitized HTML: marked for parsing, highlight.js (core plus a
 * handful of common languages, to keep the bundle small) for fenced code,
 * DOMPurify for safety.  Model output is untrusted: nothing reaches
 * `innerHTML` without passing DOMPurify.
 */

import { Marked, type Tokens } from "marked";
import createDOMPurify, { type DOMPurify as Purifier, type WindowLike } from "dompurify";
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import diff from "highlight.js/lib/languages/diff";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import markdown from "highlight.js/lib/languages/markdown";
import plaintext from "highlight.js/lib/languages/plaintext";
import python from "highlight.js/lib/languages/python";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";

const LANGUAGES = {
  bash,
  diff,
  javascript,
  json,
  markdown,
  plaintext,
  python,
  sql,
  typescript,
  xml,
  yaml,
};
for (const [name, language] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, language);

/** Auto-detection only for short unlabeled blocks: it tries every language. */
const AUTO_DETECT_MAX = 5000;

/** HTML-escape text for a text context. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Highlighted HTML for `code` (hljs output is escaped), with its class names. */
export function highlightCode(code: string, lang: string): { html: string; language: string } {
  const name = lang.toLowerCase();
  if (name !== "" && hljs.getLanguage(name)) {
    const result = hljs.highlight(code, { language: name, ignoreIllegals: true });
    return { html: result.value, language: result.language ?? name };
  }
  if (name === "" && code.length <= AUTO_DETECT_MAX) {
    const result = hljs.highlightAuto(code);
    if (result.language && result.relevance >= 5) return { html: result.value, language: result.language };
  }
  return { html: escapeHtml(code), language: name };
}

/** The `<pre><code>` HTML of a fenced block. */
export function codeBlockHtml(code: string, lang: string): string {
  const { html, language } = highlightCode(code.replace(/\n$/, ""), lang);
  const cls = language ? ` language-${escapeHtml(language)}` : "";
  return `<pre><code class="hljs${cls}">${html}</code></pre>\n`;
}

/**
 * Markdown to sanitized HTML.  `inline`, when present, renders inline Markdown
 * only (no `<p>`, no blocks): the renderer uses it for runs of a long paragraph.
 */
export interface MarkdownToHtml {
  (markdown: string): string;
  inline?: (markdown: string) => string;
}

/** What DOMPurify needs of a window (the page's, or jsdom's). */
export type { WindowLike };

/**
 * Build the Markdown renderer for one window (the page's, or jsdom's in
 * tests).  Links open in a new tab with `noopener`.
 */
export function createMarkdown(win: WindowLike): MarkdownToHtml {
  const purify: Purifier = createDOMPurify(win);
  purify.addHook("afterSanitizeAttributes", (node) => {
    if (node.nodeName === "A" && node.getAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  });
  const marked = new Marked({
    gfm: true,
    breaks: false,
    async: false,
    renderer: {
      code(token: Tokens.Code): string {
        return codeBlockHtml(token.text, (token.lang ?? "").split(/\s+/)[0] ?? "");
      },
    },
  });
  const render: MarkdownToHtml = (md: string): string => {
    const html = marked.parse(md, { async: false });
    return purify.sanitize(html, { ADD_ATTR: ["target"] });
  };
  render.inline = (md: string): string => {
    const html = marked.parseInline(md, { async: false });
    return purify.sanitize(html, { ADD_ATTR: ["target"] });
  };
  return render;
}
