"""Parse phase: `.team` text -> AST (`nodes.Module`) or syntax diagnostics.

Lark's LALR tables for the grammar drive a loop that calls the AST builder as
each rule is reduced, so that no parse tree is materialised; the tables are
cached (with Lark's analysis of the grammar) so that a file without syntax
errors never needs Lark's parser itself. Syntax errors become diagnostics that name the expected tokens in
words, put the caret on the offending token (or at the end of the file), and
suggest the nearest keyword for a misspelled one. The parser recovers after an
error and reports the next broken statement too (up to MAX_SYNTAX_ERRORS); the
language server also takes the recovered AST (`parse_tolerant`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from functools import lru_cache
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from . import nodes as n
from .diagnostics import Diagnostic, diag
from .resources import resource_dir
from .source import SourceFile, Span

if TYPE_CHECKING:  # Lark itself is imported only to describe a syntax error, or to make the cached plan
    from lark import Lark, Token
    from lark.exceptions import UnexpectedInput, UnexpectedToken

_DESCRIPTIONS = {
    "WORD": "a value",
    "STRING": "a quoted string",
    "_NL": "a newline",
    "SEMICOLON": "';'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "$END": "end of file",
}
_SEPARATORS = ("_NL", "SEMICOLON")


class _WholeWords:
    """Post-lexer hook: WORD is acceptable in every parser state.

    The contextual lexer would otherwise match a keyword at the start of a
    longer word (`vma` as `vm` + `a`). With WORD always in play the longest
    match wins, and Lark turns a WORD into a keyword only when the whole word
    is a keyword that the current state expects.
    """

    always_accept = ("WORD",)

    def process(self, stream):
        return stream


class _Block(NamedTuple):
    """A `{ … }` option block: its statements and its span (braces included)."""

    items: tuple
    span: Span


class _Via(NamedTuple):
    """`bridge X` / `vf X` / `portgroup X` after a network source."""

    field: str
    value: n.Value
    span: Span


class _Tok:
    """The fast path's token: what the builder reads of a Lark Token, without its cost."""

    __slots__ = ("end_pos", "start_pos", "type", "value")

    def __init__(self, type_: str, value: str, start_pos: int, end_pos: int) -> None:
        self.type, self.value, self.start_pos, self.end_pos = type_, value, start_pos, end_pos


_TOKENS: tuple[type, ...] = (_Tok, str)  # the fast path's tokens, and Lark's (its Token is a str; no AST node is one)


class _Builder:
    """Grammar rule -> AST node. `source` is set before each parse. Lark takes it as its transformer
    (`_make_lark`), calling its method of each rule's name; a rule without one would become Lark's Tree,
    as with Lark's own Transformer."""

    source: SourceFile

    # -- helpers --
    def _span(self, children: list[Any]) -> Span:
        first, last = children[0], children[-1]
        start = cast(_Tok, first).start_pos if isinstance(first, _TOKENS) else first.span.start
        end = cast(_Tok, last).end_pos if isinstance(last, _TOKENS) else last.span.end
        return Span(self.source, start or 0, end or 0)  # (a token from the source always has both)

    @staticmethod
    def _nodes(children) -> tuple:
        return tuple(c for c in children if not isinstance(c, _TOKENS))

    # -- values --
    def value(self, children):
        tok = children[0]
        span = Span(self.source, tok.start_pos, tok.end_pos)
        if tok.type == "STRING":
            return n.Value(_unquote(tok.value), span, quoted=True)
        return n.Value(tok.value, span)

    # -- file and VM --
    def start(self, children):
        vms = self._nodes(children)
        return n.Module(vms, Span(self.source, 0, len(self.source.text)))

    def vm(self, children):
        name, *items = self._nodes(children)
        return n.Vm(name, tuple(items), self._span(children))

    def setting(self, children):
        key, value = children
        return n.Setting(key.value, value, None, self._span(children))

    def memory(self, children):
        return n.Setting("memory", children[1], children[2] if len(children) > 2 else None, self._span(children))

    def unit(self, children):
        tok = children[0]
        return n.Value(tok.value, Span(self.source, tok.start_pos, tok.end_pos))

    def allow(self, children):
        return n.Setting("allow", children[1], None, self._span(children))

    # -- team form --
    def team(self, children):
        name, *items = self._nodes(children)
        return n.Team(name, tuple(items), self._span(children))

    def persistent(self, children):
        model, source, *rest = self._nodes(children)
        return n.Persistent(model, source, rest[0].items if rest else (), self._span(children))

    def transient(self, children):
        source, *rest = self._nodes(children)
        return n.Transient(source, rest[0].items if rest else (), self._span(children))

    def options(self, children):
        return _Block(self._nodes(children), self._span(children))

    # -- explicit form --
    def nic(self, children):
        name, *items = self._nodes(children)
        return n.Nic(name, tuple(items), self._span(children))

    def model(self, children):
        return n.Model(children[1], self._span(children))

    def nic_source(self, children):
        return n.NicSource(children[1], self._span(children))

    def teaming_persistent(self, children):
        return n.Teaming("persistent", None, self._span(children))

    def teaming_transient(self, children):
        return n.Teaming("transient", children[2], self._span(children))

    def mac(self, children):
        return n.Mac(children[1], self._span(children))

    # -- options --
    def _make_option(self, key, children):
        value = children[-1] if len(children) > 1 and isinstance(children[-1], n.Value) else None
        return n.Option(key, value, self._span(children))

    def address(self, children):
        return self._make_option("address", children)

    def boot(self, children):
        return self._make_option("boot", children)

    def mtu(self, children):
        return self._make_option("mtu", children)

    def rom(self, children):
        return self._make_option("rom " + children[1].value, children)

    def nic_setting(self, children):
        return n.NicSetting(children[0].value, tuple(children[1:]), self._span(children))

    def setting_word(self, children):
        tok = children[0]
        return tok if isinstance(tok, n.Value) else n.Value(tok.value, Span(self.source, tok.start_pos, tok.end_pos))

    def managed_opt(self, children):
        m = children[0]
        return n.Option("managed", n.Value("yes" if m.enabled else "no", m.span), m.span)

    def managed(self, children):
        enabled = len(children) == 1 or children[1].value == "yes"
        return n.Managed(enabled, self._span(children))

    # -- sources --
    def _source(self, kind, children, **fields):
        return n.Source(kind, self._span(children), **fields)

    def src_user(self, children):
        return self._source("user", children)

    def src_ethernet(self, children):
        return self._source("ethernet", children)

    def src_vhostuser(self, children):
        return self._source("vhostuser", children, target=children[1], mode=children[3] if len(children) > 3 else None)

    def src_bridge(self, children):
        return self._source("bridge", children, target=children[1])

    def src_network(self, children):
        fields = {"target": children[1]}
        for via in children[2:]:
            fields[via.field] = via.value
        return self._source("network", children, **fields)

    def via_bridge(self, children):
        return _Via("via_bridge", children[1], self._span(children))

    def via_vf(self, children):
        return _Via("via_vf", children[1], self._span(children))

    def via_portgroup(self, children):
        return _Via("portgroup", children[1], self._span(children))

    def src_direct(self, children):
        return self._source("direct", children, target=children[1], mode=children[3] if len(children) > 3 else None)

    def src_hostdev(self, children):
        return self._source("hostdev", children, target=children[1], managed=children[2] if len(children) > 2 else None)

    def src_pci_hostdev(self, children):
        return self._source(
            "pci-hostdev", children, target=children[1], managed=children[2] if len(children) > 2 else None
        )


_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _unquote(text: str) -> str:
    body = text[1:-1]
    if "\\" not in body:
        return body
    return _ESCAPE.sub(lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), body)


_local = threading.local()


@lru_cache(maxsize=1)
def _grammar() -> str:
    return (resource_dir("grammar") / "team.lark").read_text(encoding="utf-8")


def _cache_path(kind: str = "cache") -> str | bool:
    """Where Lark may keep its analysed grammar (and teamc its `_Plan` of it, kind "plan"): the user's
    own cache folder (the cache is a pickle, so never a shared temporary folder). False when there is
    no writable one."""
    import hashlib
    import os
    from importlib.util import find_spec

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "teamc")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if not os.access(folder, os.W_OK) or os.stat(folder).st_uid != os.getuid():
            return False
    except OSError:
        return False
    digest = hashlib.sha256(_grammar().encode()).hexdigest()[:16]
    if kind == "plan":  # what the plan is made by is part of its key: this module's own text
        try:
            with open(__file__, "rb") as fh:
                digest += "-" + hashlib.sha256(fh.read()).hexdigest()[:16]
        except OSError:  # not a file (a zip import): no plan is kept, the tables come from Lark's parser
            return False
    # Which Lark made it, without importing Lark (17 ms, which a run without syntax errors is spared): the
    # installed package's stamp, which a new install of Lark changes.
    try:
        spec = find_spec("lark")
        stamp = os.stat(spec.origin) if spec is not None and spec.origin else None
    except (OSError, ValueError, ImportError):
        stamp = None
    if stamp is None:
        return False
    return os.path.join(folder, f"grammar-{digest}-lark-{stamp.st_size:x}-{stamp.st_mtime_ns:x}.{kind}")


class _Parser:
    """One thread's parser: the builder, the fast path's tables bound to it (so a table never calls into
    another parser's builder), and Lark's parser with the builder as its transformer. Lark's is made
    only when it is needed (to describe a syntax error): the tables come from the cached `_Plan`."""

    def __init__(self) -> None:
        self.builder = _Builder()
        self._lark: Lark | None = None
        plan = _cached_plan()
        self.tables = _Tables(self.lark, self.builder) if plan is None else _Tables.from_plan(plan, self.builder)

    @property
    def lark(self) -> Lark:
        if self._lark is None:
            self._lark = _make_lark(self.builder)
        return self._lark

    def lark_for_errors(self) -> Lark:
        """Lark's parser, to describe a syntax error through its own parse table. The fast path's state
        numbers are that table's only if its tables were made from this Lark (another process may have
        analysed the grammar again since the plan was cached, and Lark numbers states differently each
        time): tables from the plan are replaced by ones made from it, and the parse starts again."""
        lark = self.lark
        if self.tables.origin is not lark:
            self.tables = _Tables(lark, self.builder)
            raise _Restart
        return lark


def _make_lark(builder: _Builder) -> Lark:
    from lark import Lark

    return Lark(_grammar(), parser="lalr", lexer="contextual", keep_all_tokens=True, transformer=builder,
                postlex=_WholeWords(), cache=_cache_path())


@lru_cache(maxsize=1)
def _cached_plan() -> _Plan | None:
    """The fast path's plan, from the cache folder, or made from Lark's analysis and stored there.
    None when there is no cache folder (each parser then makes its tables from Lark's own)."""
    import os
    import pickle

    path = _cache_path("plan")
    if not isinstance(path, str):
        return None
    try:
        with open(path, "rb") as fh:
            plan = pickle.load(fh)
    except Exception:  # noqa: BLE001 - missing or damaged: made again below
        plan = None
    if isinstance(plan, _Plan):
        return plan
    plan = _make_plan(_make_lark(_Builder()))
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "wb") as fh:
            pickle.dump(plan, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, path)  # whole or not at all, for a parallel run reading it
    except OSError:
        try:
            os.remove(temporary)
        except OSError:
            pass
    return plan


def _parser() -> _Parser:
    # One parser per thread: the builder carries the current source.
    cached = getattr(_local, "parser", None)
    if cached is None:
        cached = _local.parser = _Parser()
    return cached


def parse(source: SourceFile) -> tuple[n.Module | None, list[Diagnostic]]:
    """Parse one file. Returns the module, or None and every syntax diagnostic (up to MAX_SYNTAX_ERRORS)."""
    result = parse_tolerant(source, keep_tree=False)
    return (None, result.diagnostics) if result.diagnostics else (result.module, [])


def parse_part(source: SourceFile, start: int, end: int) -> n.Module | None:
    """The VMs of `source.text[start:end]`, parsed as a file of their own would be (spans stay offsets in the
    whole text); None at a syntax error, which only `parse` of the whole file describes as `teamc` reports it."""
    parser = _parser()
    parser.builder.source = source
    try:
        return _parse_clean(parser.tables, source.text, start, end)
    except _Bail:
        return None


class Parsed(NamedTuple):
    """What a recovering parse gives: the module (None only when recovery gave up), the syntax
    diagnostics, and the offsets of the errors (the blocks around them hold synthetic values)."""

    module: n.Module | None
    diagnostics: list[Diagnostic]
    error_offsets: tuple[int, ...]


MAX_SYNTAX_ERRORS = 50


def parse_tolerant(source: SourceFile, keep_tree: bool = True) -> Parsed:
    """Parse with error recovery, reporting several syntax errors per file.

    After an error the parser drops tokens until a statement ends (newline, `;` or `}`), and
    closes the statement or block there with placeholder tokens if the grammar needs them, so
    the rest of the file parses on (panic mode, as in ANTLR's default strategy). With
    `keep_tree` the AST is built throughout (the language server outlines a broken file);
    without it, rules after the first error build nothing, so a huge file stays cheap.
    """
    parser = _parser()
    parser.builder.source = source
    try:
        return Parsed(_parse_clean(parser.tables, source.text), [], ())
    except _Bail:  # a syntax error: parse again, recovering and describing each
        return _drive(parser, source, recover=True, keep_tree=keep_tree)


# --- what the grammar says -----------------------------------------------------
#
# The grammar is the only list of tokens, units and statement keywords: everything below is
# read from Lark's analysis of it, never restated.


class Grammar(NamedTuple):
    """The facts of grammar/team.lark that the parser, the formatter and the keyword table use."""

    lexer: re.Pattern[str]  # one alternative per terminal (keywords aside) in Lark's order; `lastgroup` names it
    ignored: frozenset[str]  # terminals skipped between tokens: white space, comments
    word: str  # the terminal that reads a keyword: WORD, retyped to the keyword where the parser expects it
    keywords: dict[str, str]  # keyword text -> its terminal
    texts: dict[str, str]  # every literal terminal -> its text (keywords and punctuation)
    patterns: dict[str, re.Pattern[str]]  # every terminal -> its regular expression
    units: tuple[str, ...]  # the `unit` rule's words, in the grammar's order
    starts: dict[str, frozenset[str]]  # rule -> the keywords a statement of that rule may start with


@lru_cache(maxsize=1)
def grammar() -> Grammar:
    """The grammar's facts (the same for every thread's parser)."""
    return _parser().tables.grammar


class _Patterns(dict):
    """Terminal -> its regular expression, compiled when first asked for (the parser itself reads only the
    one lexer expression; compiling all 70 would cost a start-up more than the rest of reading the plan)."""

    def __init__(self, sources: dict[str, str], flags: int) -> None:
        super().__init__()
        self.sources, self.flags = sources, flags

    def __missing__(self, name: str) -> re.Pattern[str]:
        pattern = self[name] = re.compile(self.sources[name], self.flags)
        return pattern

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Patterns) and (self.sources, self.flags) == (other.sources, other.flags)

    __hash__ = None

    def __reduce__(self):
        return _Patterns, (self.sources, self.flags)


def _lark_order(term) -> tuple:
    # How Lark's lexer orders its alternatives (lark.lexer.BasicLexer): the first that matches wins.
    return (-term.priority, -term.pattern.max_width, -len(term.pattern.value), term.name)


def _read_grammar(lark: Lark) -> Grammar:
    from lark.lexer import PatternStr

    flags = lark.lexer_conf.g_regex_flags
    terminals = sorted(lark.terminals, key=_lark_order)
    regexps = {t.name: t.pattern.to_regexp() for t in terminals}
    texts = {t.name: t.pattern.value for t in terminals if isinstance(t.pattern, PatternStr)}
    # A literal that a regular terminal reads whole is lexed as that terminal and retyped where the parser
    # expects the literal (lark.lexer._create_unless): those literals are the keywords.
    absorbing: dict[str, dict[str, str]] = {}
    for t in terminals:
        if t.name in texts:
            continue
        pattern = re.compile(regexps[t.name], flags)
        for lit in terminals:
            if lit.name in texts and lit.priority == t.priority:
                m = pattern.match(lit.pattern.value)
                if m is not None and m.group() == lit.pattern.value:
                    absorbing.setdefault(t.name, {})[lit.pattern.value] = lit.name
    if len(absorbing) != 1:
        raise RuntimeError(f"the fast lexer reads keywords through one terminal; the grammar has {sorted(absorbing)}")
    ((word, keywords),) = absorbing.items()
    lexed = [t for t in terminals if t.name not in keywords.values()]
    lexer = re.compile("|".join(f"(?P<{t.name}>{regexps[t.name]})" for t in lexed), flags)

    rules: dict[str, list[Sequence]] = {}
    for rule in lark.rules:
        rules.setdefault(str(rule.origin.name), []).append(rule.expansion)  # (a plain str: see _make_plan)
    # FIRST sets over the rules (a fixpoint, with empty expansions), as far as the keywords go.
    nullable: set[str] = set()
    first: dict[str, set[str]] = {name: set() for name in rules}
    changed = True
    while changed:
        changed = False
        for name, expansions in rules.items():
            for expansion in expansions:
                for sym in expansion:
                    new = {sym.name} if sym.is_term else first[sym.name]
                    if not new <= first[name]:
                        first[name] |= new
                        changed = True
                    if sym.is_term or sym.name not in nullable:
                        break
                else:
                    if name not in nullable:
                        nullable.add(name)
                        changed = True
    starts = {name: frozenset(texts[t] for t in terms if t in keywords.values()) for name, terms in first.items()}
    units = tuple(texts[expansion[0].name] for expansion in rules["unit"])
    return Grammar(lexer, frozenset(lark.lexer_conf.ignore), word, keywords, texts,
                   _Patterns(regexps, flags), units, starts)


# --- the fast path -----------------------------------------------------------
#
# Lark's LALR tables and rule callbacks, driven by a tight loop and a lexer made of one regular
# expression built from the grammar's terminals in the order Lark's lexer tries them. It reads exactly
# the tokens of the grammar's contextual lexer (WORD always; a WORD becomes a keyword only where the
# parser state expects that keyword). At an unexpected token it describes the error through Lark's own
# UnexpectedToken, with an interactive parser made from its stacks, so the error reads exactly as on
# Lark's path without parsing again. tests/test_parser.py checks that both paths give the same AST and
# first diagnostic.
#
# The loop uses Lark internals that are not its public API; pyproject.toml pins the Lark versions they
# were checked against, and `_check_internals` refuses, loudly, a Lark that lacks them.

# Where a statement ends: recovery resumes at these.
_SYNC = frozenset(("_NL", "SEMICOLON", "RBRACE", "$END"))


class _Bail(Exception):
    """Without recovery: a character no token matches."""


class _GiveUp(Exception):
    """Recovery found no way to close the file."""


class _Restart(Exception):
    """The first syntax error met with the cached plan's tables: parse again with tables made from Lark's."""


def _discard(children) -> None:
    return None


def _check_internals(lark: Lark) -> None:
    """Fail at build time, naming what is missing, if this Lark lacks an internal the fast path uses."""
    import inspect

    import lark as lark_module

    missing = []
    try:
        from lark.lexer import PatternStr  # noqa: F401
        from lark.parsers.lalr_analysis import Shift  # noqa: F401
        from lark.parsers.lalr_interactive_parser import InteractiveParser
        from lark.parsers.lalr_parser_state import ParseConf, ParserState

        if list(inspect.signature(ParseConf).parameters) != ["parse_table", "callbacks", "start"]:
            missing.append("ParseConf(parse_table, callbacks, start)")
        if list(inspect.signature(ParserState).parameters)[:4] != ["parse_conf", "lexer", "state_stack",
                                                                   "value_stack"]:
            missing.append("ParserState(parse_conf, lexer, state_stack, value_stack)")
        if list(inspect.signature(InteractiveParser).parameters) != ["parser", "parser_state", "lexer_thread"]:
            missing.append("InteractiveParser(parser, parser_state, lexer_thread)")
    except ImportError as err:
        missing.append(str(err))
    frontend = getattr(getattr(getattr(lark, "parser", None), "parser", None), "parser", None)
    table = getattr(frontend, "parse_table", None)
    for what, ok in (("Lark.parser.parser.parser.parse_table", table is not None),
                     ("Rule.options.keep_all_tokens/expand1/empty_indices/template_source",
                      all(hasattr(getattr(rule, "options", None), a) for rule in getattr(lark, "rules", ())
                          for a in ("keep_all_tokens", "expand1", "empty_indices", "template_source"))),
                     ("parse_table.states/start_states/end_states",
                      all(hasattr(table, a) for a in ("states", "start_states", "end_states"))),
                     ("Lark.terminals, Lark.rules, Lark.lexer_conf.ignore",
                      all(hasattr(lark, a) for a in ("terminals", "rules", "lexer_conf")))):
        if not ok:
            missing.append(what)
    if missing:
        raise RuntimeError(f"lark {lark_module.__version__} lacks what teamc's fast parser uses "
                           f"({'; '.join(missing)}): install the lark version pyproject.toml names")


class _Plan(NamedTuple):
    """What the fast path takes from Lark's analysis of the grammar, as plain data that is cached
    (pickled) in the user's cache folder, so that a run that meets no syntax error never makes Lark's
    parser: its parse table with each reduction's rule by number, each rule's builder call, and the
    grammar's facts."""

    start: int
    end: int
    # state -> terminal -> (True, next state) | (False, (size of the rule's expansion, its origin, its number))
    states: dict[int, dict[str, tuple]]
    rules: tuple[tuple[str | None, tuple[int, ...]], ...]  # the builder method (None: an inlined rule), splices
    grammar: Grammar


def _make_plan(lark: Lark) -> _Plan:
    _check_internals(lark)
    from lark.parsers.lalr_analysis import Shift

    table = lark.parser.parser.parser.parse_table
    number = {rule: i for i, rule in enumerate(lark.rules)}
    states = {}
    for state, actions in table.states.items():
        # (Lark names some symbols with its Token, a str: plain str here, so that loading the plan needs no Lark)
        states[state] = {str(term): (True, arg) if action is Shift
                         else (False, (len(arg.expansion), str(arg.origin.name), number[arg]))
                         for term, (action, arg) in actions.items()}
    return _Plan(table.start_states["start"], table.end_states["start"], states, _rule_calls(lark),
                 _read_grammar(lark))


class _Tables:
    """Lark's parse table, flattened for the fast loop (twice: building the AST, and building nothing),
    and the grammar's tokens. Made per parser object: the callbacks are bound to that parser's builder."""

    def __init__(self, lark: Lark, builder: _Builder) -> None:
        self.origin: Lark | None = lark  # the Lark whose state numbers these are (None: the cached plan's)
        self._bind(_make_plan(lark), builder)

    @classmethod
    def from_plan(cls, plan: _Plan, builder: _Builder) -> _Tables:
        tables = cls.__new__(cls)
        tables.origin = None
        tables._bind(plan, builder)
        return tables

    def _bind(self, plan: _Plan, builder: _Builder) -> None:
        callbacks = [_callback(builder, method, spliced) for method, spliced in plan.rules]
        self.start, self.end = plan.start, plan.end
        self.states = {}
        self.bare_states = {}
        for state, actions in plan.states.items():
            flat, bare = {}, {}
            for term, (shift, arg) in actions.items():
                if shift:
                    flat[term] = bare[term] = (True, arg)
                else:
                    size, origin, rule = arg
                    flat[term] = (False, (size, origin, callbacks[rule]))
                    bare[term] = (False, (size, origin, _discard))
            self.states[state] = flat
            self.bare_states[state] = bare
        self.grammar = plan.grammar
        self.keywords = self.grammar.keywords
        self.skipping_lexer = _skipping(self.grammar)
        # The placeholder recovery feeds for each terminal: a keyword's own text, else nothing.
        self.fill_text = self.grammar.texts


def _skipping(grammar: Grammar) -> re.Pattern[str]:
    """The lexer of the clean loop: the blanks before a token are read by the token's match (one match a
    token, not two after a blank). The blanks are the ignored terminals a space matches; where no token
    follows them (the end, or what no terminal reads), the match gives them back to their own terminal,
    so it reads what `grammar.lexer` reads, token for token. The tokens' positions are the same, but for
    a line break's after a carriage return (unseen: a line break is in no AST node)."""
    blanks = "|".join(grammar.patterns[t].pattern for t in sorted(grammar.ignored) if grammar.patterns[t].match(" "))
    return re.compile(f"(?:{blanks})?(?:{grammar.lexer.pattern})", grammar.lexer.flags)


def _rule_calls(lark: Lark) -> tuple[tuple[str | None, tuple[int, ...]], ...]:
    """For each of Lark's rules, in order: the builder method that builds it (None for an inlined rule:
    `_name`, and the `__name_n` rules Lark makes for `*` and `?`, which give the list of their children),
    and where its children hold inlined rules' lists, spliced into its own. This is the one job Lark's
    per-rule wrappers (lark.parse_tree_builder) do here; options that would need more wrappers are refused."""
    out = []
    for rule in lark.rules:
        options = rule.options
        if not options.keep_all_tokens or (options.expand1 and not rule.alias) or options.empty_indices \
                or options.template_source:
            raise RuntimeError(f"the fast parser calls the builder directly and cannot build rule {rule}: "
                               "keep all tokens, and no `?rule` without aliases, `[…]` or templates")
        spliced = tuple(i for i, sym in enumerate(rule.expansion) if not sym.is_term and sym.name.startswith("_"))
        out.append((None if rule.origin.name.startswith("_") else str(rule.alias or rule.origin.name), spliced))
    return tuple(out)


def _callback(builder: _Builder, method: str | None, spliced: tuple[int, ...]):
    call = _children if method is None else getattr(builder, method)
    return _splicing(call, spliced) if spliced else call


def _direct_callbacks(lark: Lark, builder: _Builder) -> dict:
    """Each of Lark's rules -> its builder method, called directly rather than through Lark's wrappers."""
    calls = zip(lark.rules, _rule_calls(lark), strict=True)
    return {rule: _callback(builder, method, spliced) for rule, (method, spliced) in calls}


def _children(children: list) -> list:
    return children


def _splicing(method, spliced: tuple[int, ...]):
    """`method` on the children with the lists of the inlined rules at `spliced` spliced in. As in Lark's own
    filter (lark.parse_tree_builder.ChildFilterLALR), a list that comes first is extended in place, so a
    left-recursive `*` rule stays linear; any other splice makes a new list."""
    if spliced == (0,):
        def call_first(children: list):
            out = children[0]
            out += children[1:]
            return method(out)

        return call_first
    if len(spliced) == 1:
        (i,) = spliced
        return lambda children: method([*children[:i], *children[i], *children[i + 1:]])

    first_in_place = spliced[0] == 0
    rest = spliced[1:] if first_in_place else spliced

    def call(children: list):
        out, last = (children[0], 1) if first_in_place else ([], 0)
        for i in rest:
            out += children[last:i]
            out += children[i]
            last = i + 1
        out += children[last:]
        return method(out)

    return call


def _unexpected(lark: Lark, term: str, tok, state_stack: list, value_stack: list, end: int) -> UnexpectedToken:
    from lark import Token
    from lark.exceptions import UnexpectedToken
    from lark.parsers.lalr_interactive_parser import InteractiveParser
    from lark.parsers.lalr_parser_state import ParseConf, ParserState

    frontend = lark.parser.parser.parser
    # The stacks hold what the fast path built, which Lark's own callbacks cannot take: the error's
    # interactive parser (it only replays the parser's moves) gets callbacks that build nothing.
    # No lexer thread: the state only replays the parser's moves.
    callbacks = {rule: _discard for rule in lark.rules}
    state = ParserState(ParseConf(frontend.parse_table, callbacks, "start"), None,  # type: ignore[arg-type]
                        list(state_stack), list(value_stack))
    if tok is None:
        token = Token("$END", "", end, 0, 0, 0, 0, end)
    else:
        token = Token(term, tok.value, tok.start_pos, 0, 0, 0, 0, tok.end_pos)
    expected = {name for name in frontend.parse_table.states[state_stack[-1]] if name.isupper()}
    # accepts() makes its probe tokens through the lexer thread's `_Token`.
    lexer_thread = SimpleNamespace(_Token=Token)
    return UnexpectedToken(token, expected, state=state,
                           interactive_parser=InteractiveParser(frontend, state, lexer_thread))  # type: ignore[arg-type]


def expected_words(source: SourceFile) -> tuple[set[str], set[str]]:
    """What may come at the end of `source` (a prefix of a file, cut where a word is being typed):
    the keywords, and the other terminals by name (WORD: a value or name; RBRACE; …).

    Recovery runs over errors earlier in the prefix, so a broken statement above the cursor
    does not stop completion below it."""
    parser = _parser()
    parser.builder.source = source
    expect: list[str] = []
    _drive(parser, source, recover=True, keep_tree=False, expect=expect)
    fill = parser.tables.fill_text
    keywords = {fill[t] for t in expect if t in fill and t not in _DESCRIPTIONS and t not in ("LBRACE", "RBRACE")}
    return keywords, {t for t in expect if t not in fill or t in ("LBRACE", "RBRACE")}


def _parse_clean(tables: _Tables, text: str, pos: int = 0, end: int | None = None) -> n.Module:
    """The fast path for a file without syntax errors (most files, every time): Lark's tables driven by
    the lexer with no bookkeeping for recovery, the builder's methods called as each rule is reduced.
    At the first error it gives up (`_Bail`), and `_drive` parses the file again to describe it.
    `text[pos:end]` is what is parsed, as a file of its own (`parse_part`); spans are offsets in `text`."""
    states, keywords, word, ignored = tables.states, tables.keywords, tables.grammar.word, tables.grammar.ignored
    match = tables.skipping_lexer.match
    state_stack = [tables.start]
    value_stack: list = []
    actions = states[tables.start]
    end = len(text) if end is None else end
    while True:
        if pos < end:
            m = match(text, pos, end)
            if m is None:
                raise _Bail
            term, stop = m.lastgroup or "", m.end()  # (every alternative is a named group)
            if term in ignored:
                pos = stop
                continue
            value = m.group(term)  # (after the blanks the match began with)
            if term == word:
                term = keywords.get(value, word)
                if term not in actions:
                    term = word
            tok = _Tok(term, value, stop - len(value), stop)
        else:
            term, tok, stop = "$END", None, end
        while True:
            step = actions.get(term)
            if step is None:
                raise _Bail
            shift, arg = step
            if shift:
                state_stack.append(arg)
                value_stack.append(tok)
                actions = states[arg]
                break
            size, origin, callback = arg
            if size:
                children = value_stack[-size:]
                del state_stack[-size:]
                del value_stack[-size:]
            else:
                children = []
            goto = states[state_stack[-1]][origin][1]
            state_stack.append(goto)
            # An inlined rule's value is its children, spliced into its parent's by the parent's callback.
            value_stack.append(children if callback is _children else callback(children))
            actions = states[goto]
            if tok is None and goto == tables.end:
                return value_stack[-1]
        pos = stop


def _drive(parser: _Parser, source: SourceFile, recover: bool, keep_tree: bool = True,
           expect: list[str] | None = None) -> Parsed:
    try:
        return _drive_once(parser, source, recover, keep_tree, expect)
    except _Restart:  # at most once per parser: its tables are Lark's own from now on
        if expect is not None:
            expect.clear()
        return _drive_once(parser, source, recover, keep_tree, expect)


def _drive_once(parser: _Parser, source: SourceFile, recover: bool, keep_tree: bool,
                expect: list[str] | None) -> Parsed:
    text = source.text
    tables = parser.tables
    states, keywords = tables.states, tables.keywords
    word, ignored = tables.grammar.word, tables.grammar.ignored
    state_stack = [tables.start]
    value_stack: list = []
    actions = states[tables.start]
    errors: list[Diagnostic] = []
    offsets: list[int] = []
    panic = False  # after an error, until a statement ends: report nothing more
    skip = 0  # depth inside a block being skipped after an error
    between_vms = False  # the error was outside any VM: resume at the next `vm`
    opened = False  # recovery opened a block the text did not
    building = True

    def accepts(term: str) -> bool:
        """Would `term` be shifted now? (Replays the reductions on a copy of the state stack.)"""
        stack = list(state_stack)
        while True:
            step = states[stack[-1]].get(term)
            if step is None:
                return False
            shift, arg = step
            if shift or (term == "$END" and arg[1] == "start"):
                return True
            size, origin, _ = arg
            if size:
                del stack[-size:]
            stack.append(states[stack[-1]][origin][1])

    def feed(term: str, tok) -> None:
        nonlocal actions, panic, between_vms
        undo: list | None = None  # what this token's reductions took off the stacks
        while True:
            step = actions.get(term)
            if step is None:
                if not recover:
                    raise _unexpected(parser.lark_for_errors(), term, tok, state_stack, value_stack, len(text))
                report(term, tok)
                # LALR may reduce on a token it then refuses; recovery resumes from before those
                # reductions, where the statement that was being parsed is still open.
                for states_taken, values_taken in reversed(undo or ()):
                    state_stack.pop()
                    value_stack.pop()
                    state_stack.extend(states_taken)
                    value_stack.extend(values_taken)
                actions = states[state_stack[-1]]
                recover_at(term, tok)
                return
            shift, arg = step
            if shift:
                state_stack.append(arg)
                value_stack.append(tok)
                actions = states[arg]
                if panic and (term == "VM" or (term in _SYNC and not between_vms)):
                    panic = between_vms = False
                return
            size, origin, callback = arg
            if size:
                children = value_stack[-size:]
                if recover:
                    undo = undo or []
                    undo.append((state_stack[-size:], children))
                del state_stack[-size:]
                del value_stack[-size:]
            else:
                children = []
                if recover:
                    undo = undo or []
                    undo.append(((), ()))
            goto = states[state_stack[-1]][origin][1]
            state_stack.append(goto)
            value_stack.append(callback(children))
            actions = states[goto]
            if term == "$END" and goto == tables.end:
                return

    def record(make) -> None:
        nonlocal states, actions, building
        if len(errors) >= MAX_SYNTAX_ERRORS:
            if not keep_tree:
                raise _GiveUp
            return
        errors.append(make())
        if building and not keep_tree:
            # Nothing after the first error is kept: build no more of the tree.
            building = False
            states = tables.bare_states
            actions = states[state_stack[-1]]

    def report(term: str, tok) -> None:
        # A block recovery opened itself is likely unclosed too: the end of file says nothing new.
        if not panic and not (term == "$END" and opened):
            offsets.append(len(text) if tok is None else tok.start_pos)
            lark = parser.lark_for_errors()
            record(lambda: _syntax_diagnostic(lark, source, _unexpected(
                lark, term, tok, state_stack, value_stack, len(text))))

    def recover_at(term: str, tok) -> None:
        nonlocal panic, skip, between_vms, opened
        at = len(text) if tok is None else tok.start_pos
        if not panic and accepts("VM"):
            between_vms = True  # junk between VMs: nothing is read again before the next `vm`
        panic = True
        if term not in ("LBRACE", "$END") and [t for t in actions if accepts(t)] == ["LBRACE"]:
            # `team up0 persistent …`: only the opening brace is missing. Open the block, read on.
            feed("LBRACE", _Tok("LBRACE", "", at, at))
            opened = True
            if term == "WORD" and tok.value in keywords and keywords[tok.value] in actions:
                term = keywords[tok.value]
            if accepts(term):
                feed(term, tok)
                panic = False
                return
        if term == "LBRACE":
            if accepts("WORD"):  # `team {`: the name is missing, the block is fine
                feed("WORD", _Tok("WORD", "", at, at))
                if accepts("LBRACE"):
                    feed(term, tok)
                    panic = False
                    return
            skip += 1  # an unexpected block is skipped whole, to its own closing brace
            return
        if tok is not None and tok.value == "vm" and term in ("WORD", "VM"):
            # A `vm` where a statement belongs: the blocks before it were left open. Close them.
            if close_until("VM", at):
                feed("VM", _Tok("VM", "vm", tok.start_pos, tok.end_pos))
                panic = between_vms = False
            return
        if term not in _SYNC or (term == "_NL" and accepts("WORD")):
            # Drop the token. A newline where a value belongs is most often a value written on
            # the next line: reading on past it reports that once, not again for the value.
            return
        # Close the statement or block with placeholders until the grammar takes the separator.
        if close_until(term, at):
            feed(term, tok)
            panic = term == "$END" or between_vms
        elif term == "$END":
            raise _GiveUp
        # else drop the separator; a later one may fit

    def close_until(term: str, at: int) -> bool:
        """Feed placeholders until `term` is acceptable; False if none makes it so."""
        nonlocal panic
        for _ in range(12):
            if accepts(term):
                break
            filler = _filler([t for t in actions if t.isupper()], accepts)
            if filler is None and term == "VM" and accepts("_NL"):
                filler = "_NL"  # VMs are separated by a newline or `;`
            if filler is None:
                break
            feed(filler, _Tok(filler, tables.fill_text.get(filler, ""), at, at))
        panic = True  # a placeholder brace or separator ends no statement of the text
        return accepts(term)

    pos, end = 0, len(text)
    match = tables.grammar.lexer.match
    try:
        while pos < end:
            m = match(text, pos)
            if m is None:
                if not recover:
                    raise _Bail
                offsets.append(pos)
                record(lambda at=pos: _character_diagnostic(source, at))
                panic = True
                if text[pos] == '"':  # an unterminated string runs to the end of its line
                    stop = text.find("\n", pos)
                    stop = end if stop == -1 else stop
                    if not skip and accepts("STRING"):  # it is still the value the statement needs
                        feed("STRING", _Tok("STRING", text[pos:stop] + '"', pos, stop))
                    pos = stop
                else:  # one diagnostic for a run of such characters
                    pos += 1
                    while pos < end and text[pos] not in '"\n' and match(text, pos) is None:
                        pos += 1
                continue
            term = m.lastgroup or ""  # (every alternative of the lexer's regex is a named group)
            stop = m.end()
            if term == word:
                value = m.group()
                if not skip:
                    term = keywords.get(value, word)
                    if term not in actions:
                        term = word
                    feed(term, _Tok(term, value, pos, stop))
            elif term in ignored:
                pass
            elif skip:
                skip += 1 if term == "LBRACE" else -1 if term == "RBRACE" else 0
            else:
                feed(term, _Tok(term, m.group(), pos, stop))
            pos = stop
        if expect is not None:
            expect.extend(t for t in actions if t.isupper() and t != "$END" and accepts(t))
            return Parsed(None, errors, tuple(offsets))
        feed("$END", None)
    except _GiveUp:
        return Parsed(None, errors, tuple(offsets))
    module = value_stack[-1] if building and value_stack else None
    return Parsed(module, errors, tuple(offsets))


# What recovery feeds to close a statement, cheapest first: a closing brace, a value, then a keyword the
# state needs (`user` for a source, `persistent` after `teaming`). Never what opens a block or a VM.
_NEVER_FILL = frozenset(("LBRACE", "STRING", "_NL", "SEMICOLON", "$END", "VM", "TEAM", "NIC"))


def _filler(candidates: list[str], accepts) -> str | None:
    order = sorted(candidates, key=lambda t: (t != "RBRACE", t != "WORD", t))
    for term in order:
        if term not in _NEVER_FILL and accepts(term):
            return term
    return None


# --- syntax errors -----------------------------------------------------------


def _terminal_words(lark: Lark) -> dict[str, tuple[str, ...]]:
    words: dict[str, tuple[str, ...]] = {}
    for term in lark.terminals:
        if type(term.pattern).__name__ == "PatternStr" and term.name not in _DESCRIPTIONS:
            words[term.name] = (term.pattern.value,)
    return words


def _acceptable(err: UnexpectedToken) -> set[str]:
    # LALR merges states, so `err.expected` may list tokens that only fit in
    # some other context; replaying each candidate gives the honest set.
    try:
        accepted = err.interactive_parser.accepts()
    except Exception:  # noqa: BLE001 - fall back to the raw set
        accepted = err.expected
    return {e for e in accepted if not e.startswith("__")}


def _describe(expected: set[str], words: dict[str, tuple[str, ...]]) -> list[str]:
    described = set()
    units = grammar().units
    for name in expected:
        if name in words and words[name][0] in units:
            described.add("a unit (KiB, MiB, GiB)")
        elif name in words:
            described.update(f"`{w}`" for w in words[name])
        else:
            described.add(_DESCRIPTIONS.get(name, name.lower()))
    if "a value" in described:
        described.discard("a quoted string")
    return sorted(described)


def _join(items: list[str]) -> str:
    if len(items) <= 2:
        return " or ".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def _character_diagnostic(source: SourceFile, pos: int) -> Diagnostic:
    """A character no token starts with: an unterminated string, or a stray character."""
    text = source.text
    char = text[pos]
    if char == '"':
        line_end = text.find("\n", pos)
        span = Span(source, pos, len(text) if line_end == -1 else line_end)
        return diag("E0001", "unterminated string", span, help='close the string with `"` on the same line')
    return diag(
        "E0001",
        f"unexpected character {char!r}",
        Span(source, pos, pos + 1),
        help="values may not contain `{`, `}`, `;`, `#` or `\"`; quote such a value",
    )


def _syntax_diagnostic(lark: Lark, source: SourceFile, err: UnexpectedInput) -> Diagnostic:
    from lark.exceptions import UnexpectedCharacters, UnexpectedToken

    text = source.text
    words = _terminal_words(lark)
    if isinstance(err, UnexpectedCharacters):
        # Lark declares pos_in_stream None on the base class; UnexpectedCharacters always sets it.
        return _character_diagnostic(source, err.pos_in_stream)  # type: ignore[arg-type]

    assert isinstance(err, UnexpectedToken)
    tok = err.token
    expected = _acceptable(err)
    # Newline and ';' are named once, as one alternative.
    meaningful = expected - set(_SEPARATORS) or expected
    listed = _describe(meaningful, words)
    if expected & set(_SEPARATORS) and meaningful != expected and tok.type not in _SEPARATORS:
        listed.append("a newline or ';'")
    expected_text = _join(listed)
    if tok.type == "$END":
        end = _end_of_code(text)
        return diag(
            "E0001",
            f"unexpected end of file; expected {expected_text}",
            Span(source, end, end),
            help="a block opened with `{` must be closed with `}`" if "RBRACE" in expected else None,
        )
    span = Span(source, tok.start_pos, tok.end_pos)
    found = "end of line" if tok.type == "_NL" else f"`{tok.value}`"
    if tok.type == "_NL":
        span = Span(source, tok.start_pos, tok.start_pos)
    keywords = sorted({w for name in meaningful if name in words for w in words[name]})
    value_expected = bool(meaningful & {"WORD", "STRING"})
    if tok.type == "WORD" and tok.value in {w for ws in words.values() for w in ws} and not value_expected:
        return diag("E0001", f"`{tok.value}` is not allowed here; expected {expected_text}", span,
                    help=_misplaced_help(tok.value))
    if tok.type == "WORD" and keywords and not value_expected:
        import difflib

        close = difflib.get_close_matches(tok.value, keywords, n=1, cutoff=0.6)
        help_text = f"did you mean `{close[0]}`?" if close else f"expected {expected_text}"
        return diag("E0002", f"unknown keyword `{tok.value}`", span, help=help_text)
    return diag(
        "E0001",
        f"unexpected {found}; expected {expected_text}",
        span,
        help=_syntax_help(tok, meaningful),
    )


@lru_cache(maxsize=1)
def _code_re() -> re.Pattern[str]:
    # A line's code: strings (an unterminated one runs to the end of the line) and anything but a comment.
    # Possessive throughout, as the grammar's STRING: no backtracking state per character.
    return re.compile(rf'(?:{grammar().patterns["STRING"].pattern}|"[^\n]*+|[^"#\n]++)*+')


def _end_of_code(text: str) -> int:
    """The offset just after the last character that is not white space or a comment."""
    end = len(text)
    while end > 0:
        start = text.rfind("\n", 0, end) + 1
        m = _code_re().match(text, start, end)  # (it matches the empty string too, so never None)
        code = m.group(0).rstrip() if m else ""
        if code:
            return start + len(code)
        end = start - 1
    return 0


def _misplaced_help(keyword: str) -> str:
    starts = grammar().starts
    if keyword in starts["_vm_item"]:
        return f"`{keyword}` belongs inside a `vm NAME {{ … }}` block"
    if keyword in starts["_team_item"]:
        return f"`{keyword}` belongs inside a `team NAME {{ … }}` block"
    return "check the statement against the language reference in the README"


def _syntax_help(tok: Token, expected: set[str]) -> str:
    if expected <= {"WORD", "STRING"}:
        return "write the value on the same line as its keyword"
    if tok.type in ("WORD", "STRING"):
        return "put each statement on its own line or separate statements with `;`"
    return "check the statement against the language reference in the README"
