// Parsed expressions by (context, text): forward() validates and normalizes its spec on
// every call, and a spec with expressions would otherwise parse them several times a launch.
// Only successful parses are kept (an error is raised again by parsing again); the cache is
// emptied when it reaches kMaxEntries, so hostile streams of new texts cannot grow it.
#include <map>
#include <memory>
#include <mutex>

#include "flashjit/expr.h"

namespace flashjit::expr {
namespace {

constexpr size_t kMaxEntries = 4096;

std::string key_of(const std::string& text, const Context& ctx) {
  std::string key = ctx.allow_score ? "s|" : "m|";
  for (const CaptureDecl& c : ctx.captures)
    key += c.name + ":" + to_string(c.dtype) + ":" + std::to_string(c.rank) + ",";
  return key + "|" + text;
}

struct Entry {
  std::shared_ptr<const Expr> expr;
  std::string canonical;
};

}  // namespace

static std::pair<std::shared_ptr<const Expr>, std::string> lookup(const std::string& text, const Context& ctx) {
  static std::mutex mu;
  static std::map<std::string, Entry> cache;
  const std::string key = key_of(text, ctx);
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(key);
    if (it != cache.end()) return {it->second.expr, it->second.canonical};
  }
  auto e = std::make_shared<const Expr>(parse(text, ctx));  // throws ExprError, nothing cached
  std::string canonical = print(*e, ctx.captures);
  std::lock_guard<std::mutex> lock(mu);
  if (cache.size() >= kMaxEntries) cache.clear();
  cache.emplace(key, Entry{e, canonical});
  return {e, canonical};
}

std::shared_ptr<const Expr> parse_cached(const std::string& text, const Context& ctx) { return lookup(text, ctx).first; }

std::string canonical_text(const std::string& text, const Context& ctx) { return lookup(text, ctx).second; }

}  // namespace flashjit::expr
