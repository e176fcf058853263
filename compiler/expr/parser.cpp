// The expression parser: recursive descent over the grammar of docs/expressions.md, with
// type checking as each node is built. Limits (text size, depth, node count) are checked
// while parsing, so no input can exhaust the stack or memory.
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <string>

#include "flashjit/expr.h"

namespace flashjit::expr {
namespace {

enum class Tok { end, ident, integer, floating, lparen, rparen, lbracket, rbracket, comma, op };

struct Token {
  Tok tok = Tok::end;
  std::string text;
  int pos = 0;
};

Node node_of(Kind k, Type t) {
  Node n;
  n.kind = k;
  n.type = t;
  return n;
}

bool is_number(Type t) { return t == Type::integer || t == Type::floating; }

class Parser {
 public:
  Parser(const std::string& text, const Context& ctx) : s_(text), ctx_(ctx) {}

  Expr run() {
    if (s_.size() > static_cast<size_t>(kMaxTextBytes))
      throw ExprError(0, "the text has " + std::to_string(s_.size()) + " bytes; at most " +
                             std::to_string(kMaxTextBytes) + " are allowed");
    for (size_t i = 0; i < s_.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(s_[i]);
      if (c >= 0x80 || (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r'))
        throw ExprError(static_cast<int>(i), "unexpected byte (expressions are printable ASCII)");
    }
    advance();
    if (cur_.tok == Tok::end) throw ExprError(0, "the expression is empty");
    parse_or();
    if (cur_.tok != Tok::end) throw ExprError(cur_.pos, "expected an operator or the end of the text but found " + describe(cur_));
    return std::move(e_);
  }

 private:
  const std::string& s_;
  const Context& ctx_;
  size_t p_ = 0;
  Token cur_;
  Expr e_;
  int depth_ = 0;

  static std::string describe(const Token& t) {
    if (t.tok == Tok::end) return "the end of the text";
    return "'" + t.text + "'";
  }

  void advance() {
    while (p_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[p_]))) ++p_;
    cur_ = Token{};
    cur_.pos = static_cast<int>(p_);
    if (p_ >= s_.size()) return;
    const char c = s_[p_];
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t q = p_;
      while (q < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[q])) || s_[q] == '_')) ++q;
      cur_.tok = Tok::ident;
      cur_.text = s_.substr(p_, q - p_);
      p_ = q;
      return;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || (c == '.' && p_ + 1 < s_.size() && std::isdigit(static_cast<unsigned char>(s_[p_ + 1])))) {
      size_t q = p_;
      bool is_float = false;
      while (q < s_.size() && std::isdigit(static_cast<unsigned char>(s_[q]))) ++q;
      if (q < s_.size() && s_[q] == '.') {
        is_float = true;
        ++q;
        while (q < s_.size() && std::isdigit(static_cast<unsigned char>(s_[q]))) ++q;
      }
      if (q < s_.size() && (s_[q] == 'e' || s_[q] == 'E')) {
        size_t r = q + 1;
        if (r < s_.size() && (s_[r] == '+' || s_[r] == '-')) ++r;
        if (r < s_.size() && std::isdigit(static_cast<unsigned char>(s_[r]))) {
          is_float = true;
          q = r;
          while (q < s_.size() && std::isdigit(static_cast<unsigned char>(s_[q]))) ++q;
        } else {
          throw ExprError(static_cast<int>(q), "malformed exponent in a number");
        }
      }
      if (q < s_.size() && (std::isalpha(static_cast<unsigned char>(s_[q])) || s_[q] == '_'))
        throw ExprError(static_cast<int>(q), "a number runs into a name");
      cur_.tok = is_float ? Tok::floating : Tok::integer;
      cur_.text = s_.substr(p_, q - p_);
      p_ = q;
      return;
    }
    cur_.text = std::string(1, c);
    switch (c) {
      case '(': cur_.tok = Tok::lparen; ++p_; return;
      case ')': cur_.tok = Tok::rparen; ++p_; return;
      case '[': cur_.tok = Tok::lbracket; ++p_; return;
      case ']': cur_.tok = Tok::rbracket; ++p_; return;
      case ',': cur_.tok = Tok::comma; ++p_; return;
      default: break;
    }
    static const char* const two[] = {"//", "==", "!=", "<=", ">="};
    for (const char* t : two)
      if (s_.compare(p_, 2, t) == 0) {
        cur_.tok = Tok::op;
        cur_.text = t;
        p_ += 2;
        return;
      }
    if (std::string("+-*/%<>&|^~").find(c) != std::string::npos) {
      cur_.tok = Tok::op;
      ++p_;
      return;
    }
    if (c == '!') throw ExprError(cur_.pos, "unexpected '!'; negate a bool with ~");
    if (c == '=') throw ExprError(cur_.pos, "unexpected '='; compare with ==");
    throw ExprError(cur_.pos, "unexpected character '" + cur_.text + "'");
  }

  bool at_op(const char* t) const { return cur_.tok == Tok::op && cur_.text == t; }

  void expect(Tok t, const char* what) {
    if (cur_.tok != t) throw ExprError(cur_.pos, std::string("expected ") + what + " but found " + describe(cur_));
    advance();
  }

  int add_node(Node n) {
    if (static_cast<int>(e_.nodes.size()) >= kMaxNodes)
      throw ExprError(n.pos, "the expression has more than " + std::to_string(kMaxNodes) + " nodes");
    e_.nodes.push_back(std::move(n));
    return static_cast<int>(e_.nodes.size()) - 1;
  }
  Type type_of(int i) const { return e_.nodes[static_cast<size_t>(i)].type; }

  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser, int pos) : p(parser) {
      if (++p.depth_ > kMaxDepth)
        throw ExprError(pos, "nested more than " + std::to_string(kMaxDepth) + " levels deep");
    }
    ~DepthGuard() { --p.depth_; }
  };

  static Type promote(Type a, Type b) { return a == Type::integer && b == Type::integer ? Type::integer : Type::floating; }

  int binary(Kind k, int a, int b, int pos) {
    const Type ta = type_of(a), tb = type_of(b);
    Type t = Type::boolean;
    switch (k) {
      case Kind::logical_and:
      case Kind::logical_or:
      case Kind::logical_xor:
        if (ta != Type::boolean || tb != Type::boolean)
          throw ExprError(pos, std::string("'") + operator_text(k) + "' needs two bools; got " + to_string(ta) + " and " +
                                   to_string(tb) + " (compare numbers first, e.g. (x != 0))");
        break;
      case Kind::eq:
      case Kind::ne:
        if (!((ta == Type::boolean && tb == Type::boolean) || (is_number(ta) && is_number(tb))))
          throw ExprError(pos, std::string("'") + operator_text(k) + "' compares two numbers or two bools; got " +
                                   to_string(ta) + " and " + to_string(tb));
        break;
      case Kind::lt:
      case Kind::le:
      case Kind::gt:
      case Kind::ge:
        if (!is_number(ta) || !is_number(tb))
          throw ExprError(pos, std::string("'") + operator_text(k) + "' compares numbers; got " + to_string(ta) + " and " +
                                   to_string(tb));
        break;
      default:  // arithmetic
        if (!is_number(ta) || !is_number(tb))
          throw ExprError(pos, std::string("'") + operator_text(k) + "' needs numbers; got " + to_string(ta) + " and " +
                                   to_string(tb) + " (convert a bool with int(x) or float(x))");
        t = k == Kind::div ? Type::floating : promote(ta, tb);
    }
    Node n = node_of(k, t);
    n.args = {a, b};
    n.pos = pos;
    return add_node(std::move(n));
  }

  // or := xor ('|' xor)*
  int parse_or() {
    int a = parse_xor();
    while (at_op("|")) {
      const int pos = cur_.pos;
      advance();
      a = binary(Kind::logical_or, a, parse_xor(), pos);
    }
    return a;
  }
  int parse_xor() {
    int a = parse_and();
    while (at_op("^")) {
      const int pos = cur_.pos;
      advance();
      a = binary(Kind::logical_xor, a, parse_and(), pos);
    }
    return a;
  }
  int parse_and() {
    int a = parse_cmp();
    while (at_op("&")) {
      const int pos = cur_.pos;
      advance();
      a = binary(Kind::logical_and, a, parse_cmp(), pos);
    }
    return a;
  }
  std::optional<Kind> cmp_kind() const {
    if (cur_.tok != Tok::op) return std::nullopt;
    const std::string& t = cur_.text;
    if (t == "==") return Kind::eq;
    if (t == "!=") return Kind::ne;
    if (t == "<") return Kind::lt;
    if (t == "<=") return Kind::le;
    if (t == ">") return Kind::gt;
    if (t == ">=") return Kind::ge;
    return std::nullopt;
  }
  // cmp := add (cmp_op add)?   -- comparisons do not chain
  int parse_cmp() {
    const int a = parse_add();
    const std::optional<Kind> k = cmp_kind();
    if (!k) return a;
    const int pos = cur_.pos;
    advance();
    const int r = binary(*k, a, parse_add(), pos);
    if (cmp_kind()) throw ExprError(cur_.pos, "comparisons do not chain; write (a < b) & (b < c)");
    return r;
  }
  int parse_add() {
    int a = parse_mul();
    while (at_op("+") || at_op("-")) {
      const Kind k = cur_.text == "+" ? Kind::add : Kind::sub;
      const int pos = cur_.pos;
      advance();
      a = binary(k, a, parse_mul(), pos);
    }
    return a;
  }
  int parse_mul() {
    int a = parse_unary();
    while (at_op("*") || at_op("/") || at_op("//") || at_op("%")) {
      const Kind k = cur_.text == "*" ? Kind::mul : cur_.text == "/" ? Kind::div : cur_.text == "//" ? Kind::floordiv : Kind::mod;
      const int pos = cur_.pos;
      advance();
      a = binary(k, a, parse_unary(), pos);
    }
    return a;
  }
  int parse_unary() {
    const int pos = cur_.pos;
    DepthGuard guard(*this, pos);
    if (at_op("-")) {
      advance();
      // A minus directly before a number is part of the literal: -2147483648 is an int.
      if (cur_.tok == Tok::integer || cur_.tok == Tok::floating) return literal(pos, /*negative=*/true);
      if (cur_.tok == Tok::ident && cur_.text == "inf") {
        advance();
        return float_literal(-INFINITY, pos);
      }
      const int a = parse_unary();
      if (!is_number(type_of(a)))
        throw ExprError(pos, std::string("unary '-' needs a number; got ") + to_string(type_of(a)) + " (negate a bool with ~)");
      Node n = node_of(Kind::neg, type_of(a));
      n.args = {a};
      n.pos = pos;
      return add_node(std::move(n));
    }
    if (at_op("~")) {
      advance();
      const int a = parse_unary();
      if (type_of(a) != Type::boolean)
        throw ExprError(pos, std::string("'~' needs a bool; got ") + to_string(type_of(a)) + " (compare first, e.g. ~(x == 0))");
      Node n = node_of(Kind::logical_not, Type::boolean);
      n.args = {a};
      n.pos = pos;
      return add_node(std::move(n));
    }
    return parse_primary();
  }

  int float_literal(double v, int pos) {
    Node n = node_of(Kind::lit_float, Type::floating);
    n.fval = v;
    n.pos = pos;
    return add_node(std::move(n));
  }

  int literal(int pos, bool negative) {
    const std::string text = cur_.text;
    const bool is_float = cur_.tok == Tok::floating;
    advance();
    if (is_float) {
      const double d = std::strtod(text.c_str(), nullptr);
      const float f = static_cast<float>(negative ? -d : d);
      if (!std::isfinite(f)) throw ExprError(pos, "float literal " + text + " is outside the float range (use inf)");
      return float_literal(static_cast<double>(f), pos);
    }
    // Integer: at most 10 digits matter; more is out of range anyway.
    size_t first = text.find_first_not_of('0');
    const std::string digits = first == std::string::npos ? "0" : text.substr(first);
    const int64_t limit = negative ? 2147483648LL : 2147483647LL;
    int64_t v = 0;
    if (digits.size() > 10) v = limit + 1;
    else v = std::stoll(digits);
    if (v > limit)
      throw ExprError(pos, "integer literal " + std::string(negative ? "-" : "") + text +
                               " does not fit 32 bits (-2147483648 .. 2147483647)");
    Node n = node_of(Kind::lit_int, Type::integer);
    n.ival = negative ? -v : v;
    n.pos = pos;
    return add_node(std::move(n));
  }

  const CaptureDecl* capture_named(const std::string& name, int* index) const {
    for (size_t i = 0; i < ctx_.captures.size(); ++i)
      if (ctx_.captures[i].name == name) {
        *index = static_cast<int>(i);
        return &ctx_.captures[i];
      }
    return nullptr;
  }

  std::vector<int> call_args(const std::string& name, int pos, size_t count) {
    expect(Tok::lparen, "'('");
    std::vector<int> args;
    if (cur_.tok != Tok::rparen) {
      for (;;) {
        args.push_back(parse_or());
        if (cur_.tok != Tok::comma) break;
        advance();
      }
    }
    expect(Tok::rparen, "',' or ')'");
    if (args.size() != count)
      throw ExprError(pos, name + "() takes " + std::to_string(count) + " argument" + (count == 1 ? "" : "s") + "; got " +
                               std::to_string(args.size()));
    return args;
  }

  int function(const std::string& name, int pos) {
    struct Fn {
      const char* name;
      Kind kind;
      size_t arity;
    };
    static const Fn fns[] = {{"where", Kind::where, 3}, {"min", Kind::min, 2},         {"max", Kind::max, 2},
                             {"abs", Kind::abs, 1},     {"exp", Kind::exp, 1},         {"log", Kind::log, 1},
                             {"tanh", Kind::tanh, 1},   {"sigmoid", Kind::sigmoid, 1}, {"sqrt", Kind::sqrt, 1},
                             {"float", Kind::to_float, 1}, {"int", Kind::to_int, 1}};
    const Fn* fn = nullptr;
    for (const Fn& f : fns)
      if (name == f.name) fn = &f;
    if (!fn) return -1;
    const std::vector<int> a = call_args(name, pos, fn->arity);
    Node n = node_of(fn->kind, Type::floating);
    n.args = a;
    n.pos = pos;
    auto need_number = [&](int i) {
      if (!is_number(type_of(a[i])))
        throw ExprError(pos, name + "() needs a number; got " + to_string(type_of(a[i])));
    };
    switch (fn->kind) {
      case Kind::where: {
        if (type_of(a[0]) != Type::boolean)
          throw ExprError(pos, std::string("where()'s condition must be a bool; got ") + to_string(type_of(a[0])));
        const Type t1 = type_of(a[1]), t2 = type_of(a[2]);
        if (t1 == Type::boolean && t2 == Type::boolean) n.type = Type::boolean;
        else if (is_number(t1) && is_number(t2)) n.type = promote(t1, t2);
        else
          throw ExprError(pos, std::string("where()'s branches must both be bools or both numbers; got ") + to_string(t1) +
                                   " and " + to_string(t2));
        break;
      }
      case Kind::min:
      case Kind::max:
        need_number(0);
        need_number(1);
        n.type = promote(type_of(a[0]), type_of(a[1]));
        break;
      case Kind::abs:
        need_number(0);
        n.type = type_of(a[0]);
        break;
      case Kind::to_float: n.type = Type::floating; break;
      case Kind::to_int: n.type = Type::integer; break;
      default:  // exp log tanh sigmoid sqrt
        need_number(0);
        n.type = Type::floating;
    }
    return add_node(std::move(n));
  }

  int parse_primary() {
    const int pos = cur_.pos;
    switch (cur_.tok) {
      case Tok::integer:
      case Tok::floating: return literal(pos, false);
      case Tok::lparen: {
        advance();
        const int a = parse_or();
        expect(Tok::rparen, "')'");
        return a;
      }
      case Tok::ident: break;
      default: throw ExprError(pos, "expected a value but found " + describe(cur_));
    }
    const std::string name = cur_.text;
    advance();
    if (name == "true" || name == "false") {
      Node n = node_of(Kind::lit_bool, Type::boolean);
      n.ival = name == "true";
      n.pos = pos;
      return add_node(std::move(n));
    }
    if (name == "inf") return float_literal(INFINITY, pos);
    static const std::pair<const char*, Var> vars[] = {{"b", Var::b},           {"h", Var::h},
                                                       {"q_idx", Var::q_idx},   {"kv_idx", Var::kv_idx},
                                                       {"seqlen_q", Var::seqlen_q}, {"seqlen_k", Var::seqlen_k},
                                                       {"score", Var::score}};
    for (const auto& [vname, v] : vars)
      if (name == vname) {
        if (v == Var::score && !ctx_.allow_score)
          throw ExprError(pos, "'score' is only available in a score_mod, not in a mask");
        Node n = node_of(Kind::var, v == Var::score ? Type::floating : Type::integer);
        n.var = v;
        n.pos = pos;
        return add_node(std::move(n));
      }
    if (cur_.tok == Tok::lparen) {
      const int f = function(name, pos);
      if (f < 0)
        throw ExprError(pos, "unknown function '" + name +
                                 "'; allowed: where, min, max, abs, exp, log, tanh, sigmoid, sqrt, float, int");
      return f;
    }
    int index = -1;
    const CaptureDecl* cap = capture_named(name, &index);
    if (!cap) {
      std::string known = "b, h, q_idx, kv_idx, seqlen_q, seqlen_k";
      if (ctx_.allow_score) known += ", score";
      for (const CaptureDecl& c : ctx_.captures) known += ", " + c.name + "[...]";
      throw ExprError(pos, "unknown name '" + name + "'; known: " + known);
    }
    if (cur_.tok != Tok::lbracket)
      throw ExprError(cur_.pos, "captured tensor '" + name + "' must be indexed, e.g. " + name + "[q_idx]");
    advance();
    std::vector<int> idx;
    for (;;) {
      idx.push_back(parse_or());
      if (cur_.tok != Tok::comma) break;
      advance();
    }
    expect(Tok::rbracket, "',' or ']'");
    if (static_cast<int>(idx.size()) != cap->rank)
      throw ExprError(pos, "'" + name + "' has rank " + std::to_string(cap->rank) + " but is read with " +
                               std::to_string(idx.size()) + " index" + (idx.size() == 1 ? "" : "es"));
    for (size_t i = 0; i < idx.size(); ++i)
      if (type_of(idx[i]) != Type::integer)
        throw ExprError(pos, "index " + std::to_string(i) + " of '" + name + "' must be an int; got " +
                                 to_string(type_of(idx[i])) + " (convert with int(x))");
    const bool is_float = cap->dtype == CaptureDType::f32 || cap->dtype == CaptureDType::f16 || cap->dtype == CaptureDType::bf16;
    Node n = node_of(Kind::read, cap->dtype == CaptureDType::boolean ? Type::boolean : is_float ? Type::floating : Type::integer);
    n.capture = index;
    n.args = idx;
    n.pos = pos;
    return add_node(std::move(n));
  }
};

}  // namespace

Expr parse(const std::string& text, const Context& ctx) {
  Expr e = Parser(text, ctx).run();
  // The canonical text is what a spec stores and parses again, so it must fit the size limit
  // too; it is longer than `text` when that saves spaces or digits (b+b is b + b, 1e9 is
  // 1e+09, 1e-45 is 1.40129846e-45).
  const size_t canonical = print(e, ctx.captures).size();
  if (canonical > static_cast<size_t>(kMaxTextBytes))
    throw ExprError(0, "the canonical form of the expression (single spaces around operators, floats to 9 digits) has " +
                           std::to_string(canonical) + " bytes; at most " + std::to_string(kMaxTextBytes) +
                           " are allowed");
  return e;
}

}  // namespace flashjit::expr
