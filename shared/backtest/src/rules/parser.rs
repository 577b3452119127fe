//! Recursive-descent parser (text → syntax tree, depth and size checked before descending) and checker (syntax
//! tree → typed [`Cond`], resolving names and collecting every name, argument and type error).

use super::lexer::{Tok, Token, lex};
use super::{
    Arg, ArgKind, ArithOp, CmpOp, Cond, External, Indicator, Limits, Num, ParamRef, PriceField, RuleError, TimeField,
};

/// A built-in name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Builtin {
    Keyword,
    Price(PriceField),
    Time(TimeField),
    External(External),
    Indicator(Indicator),
    Function(Function),
}

/// A built-in function that is not an indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Function {
    Highest,
    Lowest,
    CrossesAbove,
    CrossesBelow,
    Abs,
    Min,
    Max,
}

impl Function {
    fn name(self) -> &'static str {
        match self {
            Function::Highest => "HIGHEST",
            Function::Lowest => "LOWEST",
            Function::CrossesAbove => "CROSSES_ABOVE",
            Function::CrossesBelow => "CROSSES_BELOW",
            Function::Abs => "ABS",
            Function::Min => "MIN",
            Function::Max => "MAX",
        }
    }

    fn arity(self) -> usize {
        if self == Function::Abs { 1 } else { 2 }
    }
}

/// What `name` means to the language, if anything (case-insensitive).
pub(super) fn builtin_kind(name: &str) -> Option<Builtin> {
    Some(match name.to_ascii_uppercase().as_str() {
        "AND" | "OR" | "NOT" => Builtin::Keyword,
        "OPEN" => Builtin::Price(PriceField::Open),
        "HIGH" => Builtin::Price(PriceField::High),
        "LOW" => Builtin::Price(PriceField::Low),
        "CLOSE" | "PRICE" => Builtin::Price(PriceField::Close),
        "VOLUME" => Builtin::Price(PriceField::Volume),
        "HOUR" => Builtin::Time(TimeField::Hour),
        "DAY_OF_WEEK" => Builtin::Time(TimeField::DayOfWeek),
        "HIGHEST" => Builtin::Function(Function::Highest),
        "LOWEST" => Builtin::Function(Function::Lowest),
        "CROSSES_ABOVE" => Builtin::Function(Function::CrossesAbove),
        "CROSSES_BELOW" => Builtin::Function(Function::CrossesBelow),
        "ABS" => Builtin::Function(Function::Abs),
        "MIN" => Builtin::Function(Function::Min),
        "MAX" => Builtin::Function(Function::Max),
        _ => {
            return External::from_name(name)
                .map(Builtin::External)
                .or_else(|| Indicator::from_name(name).map(Builtin::Indicator));
        }
    })
}

#[derive(Debug)]
struct Syn {
    pos: usize,
    kind: SynKind,
}

#[derive(Debug)]
enum SynKind {
    Number(f64),
    Name(String),
    Call(String, Vec<Syn>),
    Index(Box<Syn>, Box<Syn>),
    Neg(Box<Syn>),
    Not(Box<Syn>),
    Logic(bool, Box<Syn>, Box<Syn>),
    Compare(CmpOp, Box<Syn>, Box<Syn>),
    Arith(ArithOp, Box<Syn>, Box<Syn>),
}

/// Parses and checks `text` (see [`super::parse_with`]).
pub(super) fn parse(text: &str, params: &[&str], limits: Limits) -> Result<Cond, Vec<RuleError>> {
    let len = text.chars().count();
    if len > limits.max_chars {
        return Err(vec![RuleError::TooLong { len, max: limits.max_chars }]);
    }
    if text.trim().is_empty() {
        return Err(vec![RuleError::Empty]);
    }
    let tokens = lex(text).map_err(|e| vec![e])?;
    let mut parser = Parser { tokens, at: 0, depth: 0, nodes: 0, limits };
    let syn = parser.or().map_err(|e| vec![e])?;
    let next = parser.peek();
    if next.tok != Tok::Eof {
        let expected = "AND, OR or the end of the condition".to_string();
        return Err(vec![RuleError::Expected { expected, found: next.describe(), pos: next.pos }]);
    }
    let mut checker = Checker { params, errors: Vec::new() };
    let cond = checker.cond(&syn, "a rule must be a condition (true or false)");
    match cond {
        Some(c) if checker.errors.is_empty() => Ok(c),
        _ => Err(checker.errors),
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
    nodes: usize,
    limits: Limits,
}

type PResult = Result<Syn, RuleError>;

impl Parser {
    fn peek(&self) -> &Token {
        // The token list always ends with Eof and `at` never passes it.
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.at += 1;
        }
        t
    }

    fn node(&mut self, pos: usize, kind: SynKind) -> PResult {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(RuleError::TooManyNodes { pos, max: self.limits.max_nodes });
        }
        Ok(Syn { pos, kind })
    }

    /// One more level of nesting at `pos`, refused past the limit (before any recursion happens).
    fn enter(&mut self, pos: usize) -> Result<(), RuleError> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(RuleError::TooDeep { pos, max: self.limits.max_depth });
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn expect(&mut self, tok: Tok, expected: &str) -> Result<Token, RuleError> {
        let t = self.peek();
        if t.tok == tok {
            return Ok(self.bump());
        }
        Err(RuleError::Expected { expected: expected.to_string(), found: t.describe(), pos: t.pos })
    }

    fn or(&mut self) -> PResult {
        let mut left = self.and()?;
        while self.peek().tok == Tok::Or {
            self.bump();
            let right = self.and()?;
            left = self.node(left.pos, SynKind::Logic(false, Box::new(left), Box::new(right)))?;
        }
        Ok(left)
    }

    fn and(&mut self) -> PResult {
        let mut left = self.not()?;
        while self.peek().tok == Tok::And {
            self.bump();
            let right = self.not()?;
            left = self.node(left.pos, SynKind::Logic(true, Box::new(left), Box::new(right)))?;
        }
        Ok(left)
    }

    fn not(&mut self) -> PResult {
        if self.peek().tok == Tok::Not {
            let t = self.bump();
            self.enter(t.pos)?;
            let inner = self.not()?;
            self.leave();
            return self.node(t.pos, SynKind::Not(Box::new(inner)));
        }
        self.comparison()
    }

    fn cmp_op(tok: &Tok) -> Option<CmpOp> {
        Some(match tok {
            Tok::Lt => CmpOp::Lt,
            Tok::Le => CmpOp::Le,
            Tok::Gt => CmpOp::Gt,
            Tok::Ge => CmpOp::Ge,
            Tok::Eq => CmpOp::Eq,
            Tok::Ne => CmpOp::Ne,
            _ => return None,
        })
    }

    fn comparison(&mut self) -> PResult {
        let left = self.sum()?;
        let Some(op) = Self::cmp_op(&self.peek().tok) else { return Ok(left) };
        self.bump();
        let right = self.sum()?;
        if Self::cmp_op(&self.peek().tok).is_some() {
            return Err(RuleError::ChainedComparison { pos: self.peek().pos });
        }
        self.node(left.pos, SynKind::Compare(op, Box::new(left), Box::new(right)))
    }

    fn sum(&mut self) -> PResult {
        let mut left = self.product()?;
        loop {
            let op = match self.peek().tok {
                Tok::Plus => ArithOp::Add,
                Tok::Minus => ArithOp::Sub,
                _ => return Ok(left),
            };
            self.bump();
            let right = self.product()?;
            left = self.node(left.pos, SynKind::Arith(op, Box::new(left), Box::new(right)))?;
        }
    }

    fn product(&mut self) -> PResult {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek().tok {
                Tok::Star => ArithOp::Mul,
                Tok::Slash => ArithOp::Div,
                _ => return Ok(left),
            };
            self.bump();
            let right = self.unary()?;
            left = self.node(left.pos, SynKind::Arith(op, Box::new(left), Box::new(right)))?;
        }
    }

    fn unary(&mut self) -> PResult {
        if self.peek().tok == Tok::Minus {
            let t = self.bump();
            self.enter(t.pos)?;
            let inner = self.unary()?;
            self.leave();
            return self.node(t.pos, SynKind::Neg(Box::new(inner)));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> PResult {
        let mut base = self.primary()?;
        while self.peek().tok == Tok::LBracket {
            let t = self.bump();
            self.enter(t.pos)?;
            let index = self.or()?;
            self.expect(Tok::RBracket, "']'")?;
            self.leave();
            base = self.node(base.pos, SynKind::Index(Box::new(base), Box::new(index)))?;
        }
        Ok(base)
    }

    fn primary(&mut self) -> PResult {
        let t = self.bump();
        match t.tok {
            Tok::Num(v) => self.node(t.pos, SynKind::Number(v)),
            Tok::Ident if self.peek().tok == Tok::LParen => {
                self.bump();
                self.enter(t.pos)?;
                let mut args = Vec::new();
                if self.peek().tok == Tok::RParen {
                    self.bump();
                } else {
                    loop {
                        args.push(self.or()?);
                        let next = self.peek();
                        match next.tok {
                            Tok::Comma => {
                                self.bump();
                            }
                            Tok::RParen => {
                                self.bump();
                                break;
                            }
                            _ => {
                                let expected = "',' or ')'".to_string();
                                return Err(RuleError::Expected { expected, found: next.describe(), pos: next.pos });
                            }
                        }
                    }
                }
                self.leave();
                self.node(t.pos, SynKind::Call(t.text, args))
            }
            Tok::Ident => self.node(t.pos, SynKind::Name(t.text)),
            Tok::LParen => {
                self.enter(t.pos)?;
                let inner = self.or()?;
                self.expect(Tok::RParen, "')'")?;
                self.leave();
                Ok(inner)
            }
            _ => {
                let expected = "a number, a name or '('".to_string();
                Err(RuleError::Expected { expected, found: t.describe(), pos: t.pos })
            }
        }
    }
}

enum Typed {
    Num(Num),
    Cond(Cond),
}

struct Checker<'p> {
    params: &'p [&'p str],
    errors: Vec<RuleError>,
}

impl Checker<'_> {
    fn type_error(&mut self, pos: usize, message: String) {
        self.errors.push(RuleError::Type { pos, message });
    }

    /// `s` as a number; `need` starts the type error ("'+' needs numbers").
    fn num(&mut self, s: &Syn, need: &str) -> Option<Num> {
        match self.check(s)? {
            Typed::Num(n) => Some(n),
            Typed::Cond(_) => {
                self.type_error(s.pos, format!("{need}, found a condition"));
                None
            }
        }
    }

    /// `s` as a condition; `need` starts the type error ("NOT needs a condition").
    fn cond(&mut self, s: &Syn, need: &str) -> Option<Cond> {
        match self.check(s)? {
            Typed::Cond(c) => Some(c),
            Typed::Num(_) => {
                self.type_error(s.pos, format!("{need}, found a number"));
                None
            }
        }
    }

    fn param(&self, name: &str) -> Option<ParamRef> {
        let slot = self.params.iter().position(|p| p.eq_ignore_ascii_case(name))?;
        Some(ParamRef { slot, name: self.params[slot].to_string() })
    }

    fn check(&mut self, s: &Syn) -> Option<Typed> {
        match &s.kind {
            SynKind::Number(v) => Some(Typed::Num(Num::Const(*v))),
            SynKind::Name(name) => self.name(name, s.pos),
            SynKind::Call(name, args) => self.call(name, args, s.pos),
            SynKind::Index(base, index) => {
                let base = self.check(base);
                let n = self.arg(index, ArgKind::Lookback, "the lookback");
                match (base?, n?) {
                    (Typed::Num(x), n) => Some(Typed::Num(Num::Prev(Box::new(x), n))),
                    (Typed::Cond(c), n) => Some(Typed::Cond(Cond::Prev(Box::new(c), n))),
                }
            }
            SynKind::Neg(inner) => match self.num(inner, "'-' needs a number")? {
                Num::Const(v) => Some(Typed::Num(Num::Const(-v))),
                x => Some(Typed::Num(Num::Neg(Box::new(x)))),
            },
            SynKind::Not(inner) => {
                let c = self.cond(inner, "NOT needs a condition")?;
                Some(Typed::Cond(Cond::Not(Box::new(c))))
            }
            SynKind::Logic(is_and, l, r) => {
                let need =
                    if *is_and { "AND needs a condition on each side" } else { "OR needs a condition on each side" };
                let a = self.cond(l, need);
                let b = self.cond(r, need);
                let (a, b) = (Box::new(a?), Box::new(b?));
                Some(Typed::Cond(if *is_and { Cond::And(a, b) } else { Cond::Or(a, b) }))
            }
            SynKind::Compare(op, l, r) => {
                let need = format!("'{}' compares numbers", op.symbol());
                let a = self.num(l, &need);
                let b = self.num(r, &need);
                Some(Typed::Cond(Cond::Compare(*op, a?, b?)))
            }
            SynKind::Arith(op, l, r) => {
                let need = format!("'{}' needs numbers", op.symbol());
                let a = self.num(l, &need);
                let b = self.num(r, &need);
                Some(Typed::Num(Num::Arith(*op, Box::new(a?), Box::new(b?))))
            }
        }
    }

    fn name(&mut self, name: &str, pos: usize) -> Option<Typed> {
        let num = match builtin_kind(name) {
            Some(Builtin::Price(p)) => Num::Price(p),
            Some(Builtin::Time(t)) => Num::Time(t),
            Some(Builtin::External(e)) => Num::External(e),
            Some(Builtin::Indicator(ind)) => Num::Indicator(ind, defaults(ind)),
            Some(Builtin::Function(f)) => {
                self.errors.push(RuleError::ArgumentCount { name: f.name(), pos, expected: f.arity(), got: 0 });
                return None;
            }
            // The lexer turns keywords into operator tokens.
            Some(Builtin::Keyword) | None => match self.param(name) {
                Some(p) => Num::Param(p),
                None => {
                    self.errors.push(RuleError::UnknownName { name: name.to_string(), pos });
                    return None;
                }
            },
        };
        Some(Typed::Num(num))
    }

    fn call(&mut self, name: &str, args: &[Syn], pos: usize) -> Option<Typed> {
        let function = match builtin_kind(name) {
            Some(Builtin::Indicator(ind)) => return self.indicator(ind, args, pos),
            Some(Builtin::Function(f)) => f,
            Some(Builtin::Price(_) | Builtin::Time(_) | Builtin::External(_) | Builtin::Keyword) => {
                let canonical = name.to_ascii_uppercase();
                self.type_error(
                    pos,
                    format!("{canonical} is not a function (write {canonical}[1] for the previous bar)"),
                );
                return None;
            }
            None if self.param(name).is_some() => {
                self.type_error(pos, format!("parameter '{name}' is not a function"));
                return None;
            }
            None => {
                self.errors.push(RuleError::UnknownIndicator { name: name.to_string(), pos });
                return None;
            }
        };
        if args.len() != function.arity() {
            let (expected, got) = (function.arity(), args.len());
            self.errors.push(RuleError::ArgumentCount { name: function.name(), pos, expected, got });
            return None;
        }
        let fname = function.name();
        let need = |i: usize| format!("argument {i} of {fname} must be a number");
        let typed = match function {
            Function::Highest | Function::Lowest => {
                let x = self.num(&args[0], &need(1));
                let p = self.arg(&args[1], ArgKind::Period, &format!("argument 2 of {fname}"));
                let (x, p) = (Box::new(x?), p?);
                Typed::Num(if function == Function::Highest { Num::Highest(x, p) } else { Num::Lowest(x, p) })
            }
            Function::CrossesAbove | Function::CrossesBelow => {
                let a = self.num(&args[0], &need(1));
                let b = self.num(&args[1], &need(2));
                let (a, b) = (a?, b?);
                Typed::Cond(if function == Function::CrossesAbove {
                    Cond::CrossesAbove(a, b)
                } else {
                    Cond::CrossesBelow(a, b)
                })
            }
            Function::Abs => Typed::Num(Num::Abs(Box::new(self.num(&args[0], &need(1))?))),
            Function::Min | Function::Max => {
                let a = self.num(&args[0], &need(1));
                let b = self.num(&args[1], &need(2));
                let (a, b) = (Box::new(a?), Box::new(b?));
                Typed::Num(if function == Function::Min { Num::Min(a, b) } else { Num::Max(a, b) })
            }
        };
        Some(typed)
    }

    fn indicator(&mut self, ind: Indicator, args: &[Syn], pos: usize) -> Option<Typed> {
        let specs = ind.args();
        if args.is_empty() {
            return Some(Typed::Num(Num::Indicator(ind, defaults(ind))));
        }
        if args.len() != specs.len() {
            let (expected, got) = (specs.len(), args.len());
            self.errors.push(RuleError::ArgumentCount { name: ind.name(), pos, expected, got });
            return None;
        }
        let checked: Vec<Option<Arg>> = args
            .iter()
            .zip(specs)
            .enumerate()
            .map(|(i, (a, spec))| self.arg(a, spec.kind, &format!("argument {} of {}", i + 1, ind.name())))
            .collect();
        let args: Option<Vec<Arg>> = checked.into_iter().collect();
        Some(Typed::Num(Num::Indicator(ind, args?)))
    }

    /// An indicator argument or lookback: a (possibly negated) number literal within `kind`'s range, or a
    /// parameter name.
    fn arg(&mut self, s: &Syn, kind: ArgKind, what: &str) -> Option<Arg> {
        let value = match &s.kind {
            SynKind::Number(v) => Some(*v),
            SynKind::Neg(inner) => match inner.kind {
                SynKind::Number(v) => Some(-v),
                _ => None,
            },
            SynKind::Name(name) => {
                if let Some(p) = self.param(name) {
                    return Some(Arg::Param(p));
                }
                if builtin_kind(name).is_none() {
                    self.errors.push(RuleError::UnknownName { name: name.clone(), pos: s.pos });
                    return None;
                }
                None
            }
            _ => None,
        };
        let problem = match value {
            Some(v) => match kind.check(v) {
                Ok(()) => return Some(Arg::Const(v)),
                Err(problem) => problem,
            },
            None => "must be a constant or a parameter name".to_string(),
        };
        self.errors.push(RuleError::BadArgument { what: what.to_string(), pos: s.pos, problem });
        None
    }
}

fn defaults(ind: Indicator) -> Vec<Arg> {
    ind.args().iter().map(|a| Arg::Const(a.default)).collect()
}
