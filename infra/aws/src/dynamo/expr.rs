//! Expression building and the conversions between items and DynamoDB attribute maps.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use nusatrade_app::ports::store::{PK, SK, TTL_ATTR};
use nusatrade_app::ports::{CmpOp, Condition, Item, Key, SkCondition, StoreError, Update, UpdateAction, Value};
use rust_decimal::Decimal;

use super::*;

// ---------------------------------------------------------------------------------------------
// Expressions
// ---------------------------------------------------------------------------------------------

/// Builds expressions with generated placeholders: `#n<i>` for names (one per distinct name), `:v<i>`
/// for values (one per use).
#[derive(Default)]
pub(super) struct Expr {
    pub(super) names: HashMap<String, String>,
    pub(super) by_name: HashMap<String, String>,
    pub(super) values: HashMap<String, AttributeValue>,
}

impl Expr {
    pub(super) fn name(&mut self, name: &str) -> String {
        if let Some(p) = self.by_name.get(name) {
            return p.clone();
        }
        let p = format!("#n{}", self.by_name.len());
        self.by_name.insert(name.to_owned(), p.clone());
        self.names.insert(p.clone(), name.to_owned());
        p
    }

    pub(super) fn value(&mut self, v: &Value) -> Result<String, StoreError> {
        let p = format!(":v{}", self.values.len());
        self.values.insert(p.clone(), to_attr(v)?);
        Ok(p)
    }

    pub(super) fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    pub(super) fn values(&self) -> Option<AttrMap> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }

    /// Always true / always false, for the cases the expression language has no literal for.
    pub(super) fn truth(&mut self, t: bool) -> String {
        let n = self.name(PK);
        if t {
            format!("(attribute_exists({n}) OR attribute_not_exists({n}))")
        } else {
            format!("(attribute_exists({n}) AND attribute_not_exists({n}))")
        }
    }

    /// The expiry guard AND-ed with the caller's condition: an expired item fails the guard.
    /// `Item::is_expired` is `floor(ttl) <= now`, i.e. live exactly when `ttl >= now + 1` (also for a
    /// fractional `ttl`, where `ttl > now` would disagree).
    pub(super) fn guarded(&mut self, condition: Option<&Condition>, now: i64) -> Result<String, StoreError> {
        let t = self.name(TTL_ATTR);
        let v = self.value(&Value::N(Decimal::from(now) + Decimal::ONE))?;
        let guard = format!("(attribute_not_exists({t}) OR {t} >= {v})");
        Ok(match condition {
            None => guard,
            Some(c) => format!("{guard} AND {}", self.condition(c)?),
        })
    }

    /// A condition expression. Compound parts (AND, OR, NOT) come back wrapped in exactly one pair of
    /// parentheses and are embedded as they are: comparisons and functions bind tighter than the
    /// logical operators, and DynamoDB refuses redundant parentheses such as `((a))`.
    pub(super) fn condition(&mut self, c: &Condition) -> Result<String, StoreError> {
        Ok(match c {
            Condition::Exists => format!("attribute_exists({})", self.name(PK)),
            Condition::NotExists => format!("attribute_not_exists({})", self.name(PK)),
            Condition::AttrExists(n) => format!("attribute_exists({})", self.attr(n)?),
            Condition::AttrNotExists(n) => format!("attribute_not_exists({})", self.attr(n)?),
            Condition::Cmp(n, op, v) => {
                let ordered = !matches!(op, CmpOp::Eq | CmpOp::Ne);
                if ordered && !matches!(v, Value::S(_) | Value::N(_) | Value::B(_)) {
                    // DynamoDB refuses `<` on other types; the port says such a comparison is false.
                    // (The attribute's name is not registered: DynamoDB refuses unused names.)
                    if n.is_empty() {
                        return Err(StoreError::Validation("empty attribute name".into()));
                    }
                    return Ok(self.truth(false));
                }
                let op = match op {
                    CmpOp::Eq => "=",
                    CmpOp::Ne => "<>",
                    CmpOp::Lt => "<",
                    CmpOp::Le => "<=",
                    CmpOp::Gt => ">",
                    CmpOp::Ge => ">=",
                };
                let n = self.attr(n)?;
                let cmp = format!("{n} {op} {}", self.value(v)?);
                if ordered {
                    // Explicit type guard: an ordered comparison across types is false (DynamoDB's
                    // rule, and the port's); moto answers HTTP 500 to it without the guard.
                    let t = match v {
                        Value::N(_) => "N",
                        Value::B(_) => "B",
                        _ => "S",
                    };
                    format!("(attribute_type({n}, {}) AND {cmp})", self.value(&Value::S(t.into()))?)
                } else {
                    cmp
                }
            }
            Condition::BeginsWith(n, p) => {
                let n = self.attr(n)?;
                if p.is_empty() {
                    // Every string starts with "": true exactly when the attribute is a string.
                    format!("attribute_type({n}, {})", self.value(&Value::S("S".into()))?)
                } else {
                    format!("begins_with({n}, {})", self.value(&Value::S(p.clone()))?)
                }
            }
            Condition::And(cs) if cs.is_empty() => self.truth(true),
            Condition::Or(cs) if cs.is_empty() => self.truth(false),
            Condition::And(cs) | Condition::Or(cs) if cs.len() == 1 => self.condition(&cs[0])?,
            Condition::And(cs) | Condition::Or(cs) => {
                let joiner = if matches!(c, Condition::And(_)) { " AND " } else { " OR " };
                let parts = cs.iter().map(|c| self.condition(c)).collect::<Result<Vec<_>, StoreError>>()?;
                format!("({})", parts.join(joiner))
            }
            Condition::Not(c) => format!("(NOT {})", self.condition(c)?),
        })
    }

    pub(super) fn attr(&mut self, n: &str) -> Result<String, StoreError> {
        if n.is_empty() {
            return Err(StoreError::Validation("empty attribute name".into()));
        }
        Ok(self.name(n))
    }

    pub(super) fn update(&mut self, u: &Update) -> Result<String, StoreError> {
        let (mut set, mut remove, mut add) = (Vec::new(), Vec::new(), Vec::new());
        for a in &u.actions {
            match a {
                UpdateAction::Set(n, v) => {
                    let n = self.attr(n)?;
                    set.push(format!("{n} = {}", self.value(v)?));
                }
                UpdateAction::SetIfNotExists(n, v) => {
                    let n = self.attr(n)?;
                    set.push(format!("{n} = if_not_exists({n}, {})", self.value(v)?));
                }
                UpdateAction::Remove(n) => remove.push(self.attr(n)?),
                UpdateAction::Add(n, by) => {
                    let n = self.attr(n)?;
                    add.push(format!("{n} {}", self.value(&Value::N(*by))?));
                }
            }
        }
        let mut clauses = Vec::new();
        for (kw, parts) in [("SET", set), ("REMOVE", remove), ("ADD", add)] {
            if !parts.is_empty() {
                clauses.push(format!("{kw} {}", parts.join(", ")));
            }
        }
        Ok(clauses.join(" "))
    }
}

pub(super) enum SkPlan {
    All,
    Nothing,
    Cond(SkCondition),
}

/// Sort-key conditions with an empty bound, which DynamoDB refuses but whose answer is known (every
/// sort key is a non-empty string: `begins_with ""` is everything, `= ""` nothing); an inverted
/// `BETWEEN` is refused, as the embedded store does.
pub(super) fn sk_plan(c: Option<&SkCondition>) -> Result<SkPlan, StoreError> {
    Ok(match c {
        None => SkPlan::All,
        Some(SkCondition::BeginsWith(v) | SkCondition::Gt(v) | SkCondition::Ge(v)) if v.is_empty() => SkPlan::All,
        Some(SkCondition::Lt(v) | SkCondition::Le(v) | SkCondition::Eq(v)) if v.is_empty() => SkPlan::Nothing,
        Some(SkCondition::Between(a, b)) if a > b => {
            return Err(StoreError::Validation(
                "BETWEEN needs a lower bound less than or equal to the upper bound".into(),
            ));
        }
        Some(SkCondition::Between(_, b)) if b.is_empty() => SkPlan::Nothing,
        Some(SkCondition::Between(a, b)) if a.is_empty() => SkPlan::Cond(SkCondition::Le(b.clone())),
        Some(c) => SkPlan::Cond(c.clone()),
    })
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

pub(super) fn key_map(key: &Key) -> AttrMap {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(key.pk.clone())),
        (SK.to_owned(), AttributeValue::S(key.sk.clone())),
    ])
}

pub(super) fn to_attr_map(item: &Item) -> Result<AttrMap, StoreError> {
    item.0.iter().map(|(k, v)| Ok((k.clone(), to_attr(v)?))).collect()
}

/// Port value → DynamoDB value; numbers travel as Decimal's exact decimal text.
pub(super) fn to_attr(v: &Value) -> Result<AttributeValue, StoreError> {
    Ok(match v {
        Value::S(s) => AttributeValue::S(s.clone()),
        Value::N(n) => AttributeValue::N(n.normalize().to_string()),
        Value::B(b) => AttributeValue::B(Blob::new(b.clone())),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Null => AttributeValue::Null(true),
        Value::L(l) => AttributeValue::L(l.iter().map(to_attr).collect::<Result<_, _>>()?),
        Value::M(m) => {
            AttributeValue::M(m.iter().map(|(k, v)| Ok((k.clone(), to_attr(v)?))).collect::<Result<_, StoreError>>()?)
        }
    })
}

pub(super) fn from_attr_map(m: AttrMap) -> Result<Item, StoreError> {
    Ok(Item(m.into_iter().map(|(k, v)| Ok((k, from_attr(v)?))).collect::<Result<_, StoreError>>()?))
}

/// DynamoDB value → port value. Sets are not part of the platform's model: reading one is corruption.
pub(super) fn from_attr(v: AttributeValue) -> Result<Value, StoreError> {
    Ok(match v {
        AttributeValue::S(s) => Value::S(s),
        AttributeValue::N(n) => Value::N(parse_number(&n)?),
        AttributeValue::B(b) => Value::B(b.into_inner()),
        AttributeValue::Bool(b) => Value::Bool(b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::L(l) => Value::L(l.into_iter().map(from_attr).collect::<Result<_, _>>()?),
        AttributeValue::M(m) => {
            Value::M(m.into_iter().map(|(k, v)| Ok((k, from_attr(v)?))).collect::<Result<_, StoreError>>()?)
        }
        other => return Err(StoreError::Corrupt(format!("unsupported DynamoDB attribute type: {other:?}"))),
    })
}

pub(super) fn parse_number(n: &str) -> Result<Decimal, StoreError> {
    n.parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(n))
        .map_err(|_| StoreError::Corrupt(format!("number {n} does not fit a decimal")))
}
