/* HTML to text with libxml2's forgiving HTML parser: boilerplate elements are skipped whole,
 * block elements become paragraph breaks, entities come out decoded because the parser decodes
 * them. The text is then tidied by the whitespace step, so here runs of breaks are fine. */
#include <string.h>
#include <strings.h>

#include <libxml/HTMLparser.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "data/steps.h"

void vklm_html_init(void) { xmlInitParser(); }

static const char *const skipped[] = {
    "script", "style",    "noscript", "nav",    "header", "footer", "aside",    "form", "iframe",
    "svg",    "template", "button",   "select", "option", "input",  "textarea", "menu", "head",
    "object", "embed",    "canvas",   "dialog", "map",    "audio",  "video",    NULL};

static const char *const blocks[] = {
    "p",       "div",     "h1",         "h2",      "h3",   "h4",   "h5",     "h6",
    "li",      "ul",      "ol",         "dl",      "dt",   "dd",   "tr",     "table",
    "section", "article", "blockquote", "pre",     "hr",   "main", "figure", "figcaption",
    "address", "details", "summary",    "caption", "body", "html", "center", NULL};

static int in_list(const char *name, const char *const *list) {
  for (int i = 0; list[i]; i++)
    if (!strcasecmp(name, list[i])) return 1;
  return 0;
}

/* ARIA landmarks and hidden markers that name boilerplate on elements like <div>. */
static int boilerplate_attr(xmlNode *n) {
  xmlChar *role = xmlGetProp(n, (const xmlChar *)"role");
  int skip = 0;
  if (role) {
    const char *r = (const char *)role;
    skip = !strcasecmp(r, "navigation") || !strcasecmp(r, "banner") ||
           !strcasecmp(r, "contentinfo") || !strcasecmp(r, "complementary") ||
           !strcasecmp(r, "search") || !strcasecmp(r, "menu");
    xmlFree(role);
  }
  if (!skip && xmlHasProp(n, (const xmlChar *)"hidden")) skip = 1;
  if (!skip) {
    xmlChar *aria = xmlGetProp(n, (const xmlChar *)"aria-hidden");
    if (aria) {
      skip = !strcasecmp((const char *)aria, "true");
      xmlFree(aria);
    }
  }
  return skip;
}

typedef struct walker {
  vklm_buf *out;
  int pre;  /* inside <pre>: keep whitespace as is */
  int fail; /* out of memory */
} walker;

static void emit_text(walker *w, const char *t) {
  if (w->pre) {
    if (vklm_buf_append(w->out, t, strlen(t))) w->fail = 1;
    return;
  }
  /* collapse whitespace runs to one space; newlines inside text are not paragraph breaks */
  for (const char *c = t; *c; c++) {
    char ch = *c;
    if (ch == '\n' || ch == '\r' || ch == '\t' || ch == '\f') ch = ' ';
    if (ch == ' ' && w->out->n &&
        (w->out->p[w->out->n - 1] == ' ' || w->out->p[w->out->n - 1] == '\n'))
      continue;
    if (vklm_buf_putc(w->out, ch)) w->fail = 1;
  }
}

static void walk(walker *w, xmlNode *n, int depth) {
  for (; n && !w->fail; n = n->next) {
    if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
      if (n->content) emit_text(w, (const char *)n->content);
      continue;
    }
    if (n->type != XML_ELEMENT_NODE || !n->name) continue;
    const char *name = (const char *)n->name;
    if (in_list(name, skipped) || boilerplate_attr(n)) continue;
    if (!strcasecmp(name, "br")) {
      if (vklm_buf_putc(w->out, '\n')) w->fail = 1;
      continue;
    }
    int block = in_list(name, blocks);
    int pre = !strcasecmp(name, "pre");
    if (block && vklm_buf_append(w->out, "\n\n", 2)) w->fail = 1;
    if (!strcasecmp(name, "td") || !strcasecmp(name, "th"))
      if (vklm_buf_putc(w->out, ' ')) w->fail = 1;
    if (depth < 512) { /* deeper nesting is garbage; its text is dropped, never a stack blow-up */
      w->pre += pre;
      walk(w, n->children, depth + 1);
      w->pre -= pre;
    }
    if (block && vklm_buf_append(w->out, "\n\n", 2)) w->fail = 1;
  }
}

int vklm_html_extract(const char *s, size_t n, vklm_buf *out) {
  if (n > (size_t)0x7fffffff) return -1;
  int opts = HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET |
             HTML_PARSE_COMPACT;
  htmlDocPtr doc = htmlReadMemory(s, (int)n, NULL, "UTF-8", opts);
  if (!doc) return -1;
  walker w = {out, 0, 0};
  walk(&w, xmlDocGetRootElement(doc), 0);
  xmlFreeDoc(doc);
  if (w.fail) {
    vklm_buf_clear(out);
    return -1;
  }
  return 0;
}
