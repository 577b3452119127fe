//! Chat and strategy generation without a language model (issue 17): conversations stored per user, replies
//! computed from the caller's own data by what the message asks about (a symbol → its analysis; positions; the
//! account; performance and advice; the market overview), and otherwise a plain statement of what can be answered
//! without a model. Strategy generation answers the documented fallback strategy
//! (`nusatrade_backtest::strategy::fallback_strategy`), validated like any strategy, with warnings that say so.
//!
//! Store layout (one table): `USER#<uid>` / `AICONV#<conversation uuidv7>` ([`ConversationRecord`]: title, message
//! count) and `USER#<uid>` / `AIMSG#<conversation>#<message uuidv7>` ([`MessageRecord`]); a turn writes the two
//! messages and the count in one transaction, conditional on the conversation (an exchange racing a delete is
//! refused, never half-written).

use chrono::{DateTime, Utc};
use nusatrade_backtest::strategy::{self as spec, RiskProfile, StrategySpec};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::{AiError, AiResult};
use super::service::{AiService, COMPUTED_LABEL};
use crate::auth::store::user_pk;
use crate::ports::{CancelReason, Condition, Item, Key, Query, StoreError, TxOp, Update};
use crate::trading::orders::queries::ListFilter;

/// Longest chat message or strategy prompt, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4_000;
/// Most messages in one conversation.
pub const MAX_MESSAGES: u32 = 500;
/// Conversations a list returns at most.
pub const MAX_CONVERSATIONS_PAGE: u32 = 100;
/// The original's title rule: the message, cut to 50 characters + "...".
pub const TITLE_CHARS: usize = 50;

const CONV_PREFIX: &str = "AICONV#";
const MSG_PREFIX: &str = "AIMSG#";

fn conv_key(user: Uuid, id: Uuid) -> Key {
    Key::new(user_pk(user), format!("{CONV_PREFIX}{id}"))
}
fn msg_prefix(conv: Uuid) -> String {
    format!("{MSG_PREFIX}{conv}#")
}

/// One conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConversationRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub title: String,
    pub message_count: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub role: String,
    pub content: String,
    pub created_at: DateTime<Utc>,
}

/// A chat turn's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub reply: String,
    pub conversation_id: Uuid,
}

/// A generated strategy and what to know about it.
#[derive(Clone, Debug)]
pub struct GeneratedStrategy {
    pub id: Uuid,
    pub strategy: StrategySpec,
    pub explanation: String,
    pub warnings: Vec<String>,
    pub suggested_improvements: Vec<String>,
}

/// The original's title: the message, or its first 50 characters and "...".
pub fn title_of(message: &str) -> String {
    if message.chars().count() <= TITLE_CHARS {
        message.to_owned()
    } else {
        format!("{}...", message.chars().take(TITLE_CHARS).collect::<String>())
    }
}

/// What a message asks about, in the order the reply checks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Topic {
    Symbol(&'static str),
    Positions,
    Account,
    Performance,
    Market,
    Help,
}

/// The topic of `message` (a symbol named in it first, then keywords).
pub fn topic_of(message: &str) -> Topic {
    let lower = message.to_ascii_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    for i in nusatrade_domain::instrument::INSTRUMENTS {
        let s = i.symbol.to_ascii_lowercase();
        if words.iter().any(|w| *w == s) {
            return Topic::Symbol(i.symbol);
        }
    }
    let has = |keys: &[&str]| keys.iter().any(|k| words.iter().any(|w| w.starts_with(k)));
    if has(&["position", "open"]) {
        Topic::Positions
    } else if has(&["balance", "account", "equity", "pnl", "margin"]) {
        Topic::Account
    } else if has(&["recommend", "performance", "review", "improve", "mistake", "win", "stats", "history"]) {
        Topic::Performance
    } else if has(&["market", "daily", "today", "overview", "summary"]) {
        Topic::Market
    } else {
        Topic::Help
    }
}

const HELP: &str = "No language model is configured on this platform, so I answer from your own data. Ask me about \
a symbol (\"how is EURUSD?\"), your open positions, your account balance and P/L, your trading performance and what \
to improve, or today's market overview. An administrator can connect a language model for open-ended questions.";

impl AiService {
    /// `POST /ai/chat`.
    pub async fn chat(&self, user: Uuid, message: &str, conversation: Option<Uuid>) -> AiResult<Reply> {
        let now = self.clock.now();
        let conv = match conversation {
            Some(id) => self.conversation(user, id).await?.ok_or(AiError::ConversationNotFound)?,
            None => {
                let conv = ConversationRecord {
                    id: self.ids.time_ordered(now),
                    user_id: user,
                    title: title_of(message),
                    message_count: 0,
                    created_at: now,
                    updated_at: now,
                };
                self.store.put(Item::from_record(&conv_key(user, conv.id), &conv)?, Some(Condition::NotExists)).await?;
                conv
            }
        };
        if conv.message_count + 2 > MAX_MESSAGES {
            return Err(AiError::Refused(format!(
                "this conversation has {MAX_MESSAGES} messages already; start a new one"
            )));
        }
        let reply = self.answer(user, message).await?;
        let question = MessageRecord { role: "user".into(), content: message.to_owned(), created_at: now };
        let answer = MessageRecord { role: "assistant".into(), content: reply.clone(), created_at: now };
        let (qid, aid) = (self.ids.time_ordered(now), self.ids.time_ordered(now));
        let msg_key = |id: Uuid| Key::new(user_pk(user), format!("{}{id}", msg_prefix(conv.id)));
        // The question sorts before the answer even within one millisecond.
        let (qid, aid) = if qid < aid { (qid, aid) } else { (aid, qid) };
        let ops = vec![
            TxOp::Put { item: Item::from_record(&msg_key(qid), &question)?, condition: Some(Condition::NotExists) },
            TxOp::Put { item: Item::from_record(&msg_key(aid), &answer)?, condition: Some(Condition::NotExists) },
            TxOp::Update {
                key: conv_key(user, conv.id),
                update: Update::new().add("message_count", 2).set("updated_at", crate::wire::iso(now)),
                condition: Some(Condition::Exists.and(Condition::le("message_count", i64::from(MAX_MESSAGES - 2)))),
            },
        ];
        match self.store.transact_write(ops).await {
            Ok(()) => Ok(Reply { reply, conversation_id: conv.id }),
            Err(StoreError::TransactionCanceled(r)) if r.contains(&CancelReason::ConditionalCheckFailed) => {
                Err(AiError::ConversationNotFound)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The computed reply to `message`.
    async fn answer(&self, user: Uuid, message: &str) -> AiResult<String> {
        Ok(match topic_of(message) {
            Topic::Symbol(s) => match self.symbol(user, s).await {
                Ok(a) => a.text,
                Err(AiError::NoData(m)) => format!("{COMPUTED_LABEL} {m}"),
                Err(e) => return Err(e),
            },
            Topic::Market => self.daily(user).await?.summary,
            Topic::Performance => self.recommendations(user).await?.text,
            Topic::Positions => {
                let page = self.orders.positions(user, &ListFilter::default(), 50, None).await?;
                if page.items.is_empty() {
                    format!("{COMPUTED_LABEL} you have no open positions.")
                } else {
                    let lines: Vec<String> = page
                        .items
                        .iter()
                        .map(|o| {
                            format!(
                                "{} {} {} lots at {}{}",
                                o.side.as_str(),
                                o.symbol,
                                o.lots,
                                o.open_price.map(|p| p.to_string()).unwrap_or_else(|| "pending".into()),
                                o.floating_profit.map(|p| format!(", floating P/L {p}")).unwrap_or_default()
                            )
                        })
                        .collect();
                    format!("{COMPUTED_LABEL} {} open position(s):\n- {}", lines.len(), lines.join("\n- "))
                }
            }
            Topic::Account => {
                let s = self.orders.stats(user).await?;
                format!(
                    "{COMPUTED_LABEL} balance {}, equity {}, {} open position(s), floating P/L {}, today's P/L {}, \
                     total realised P/L {} over {} closed trade(s), win rate {} %.",
                    s.balance,
                    s.equity,
                    s.open_positions,
                    s.unrealized_pnl,
                    s.today_pnl,
                    s.total_pnl,
                    s.total_trades,
                    s.win_rate
                )
            }
            Topic::Help => format!("{COMPUTED_LABEL} {HELP}"),
        })
    }

    /// One of the user's conversations.
    pub async fn conversation(&self, user: Uuid, id: Uuid) -> AiResult<Option<ConversationRecord>> {
        let Some(item) = self.store.get(&conv_key(user, id)).await? else { return Ok(None) };
        let c: ConversationRecord = item.to_record()?;
        Ok((c.user_id == user).then_some(c))
    }

    /// `GET /ai/conversations`: newest first.
    pub async fn conversations(&self, user: Uuid, limit: u32) -> AiResult<Vec<ConversationRecord>> {
        let q = Query::partition(user_pk(user))
            .sk_prefix(CONV_PREFIX)
            .descending()
            .limit(limit.clamp(1, MAX_CONVERSATIONS_PAGE));
        let page = self.store.query(q).await?;
        Ok(page.items.iter().map(|i| i.to_record()).collect::<Result<_, _>>()?)
    }

    /// `GET /ai/conversations/{id}`: the messages, oldest first.
    pub async fn messages(&self, user: Uuid, id: Uuid) -> AiResult<Vec<MessageRecord>> {
        self.conversation(user, id).await?.ok_or(AiError::ConversationNotFound)?;
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let q = Query::partition(user_pk(user)).sk_prefix(msg_prefix(id)).limit(100).after(cursor);
            let page = self.store.query(q).await?;
            for i in &page.items {
                out.push(i.to_record::<MessageRecord>()?);
            }
            match page.cursor {
                Some(c) if out.len() < MAX_MESSAGES as usize => cursor = Some(c),
                _ => return Ok(out),
            }
        }
    }

    /// `DELETE /ai/conversations/{id}`: the messages, then the conversation.
    pub async fn delete_conversation(&self, user: Uuid, id: Uuid) -> AiResult<()> {
        self.conversation(user, id).await?.ok_or(AiError::ConversationNotFound)?;
        loop {
            let q = Query::partition(user_pk(user)).sk_prefix(msg_prefix(id)).limit(100);
            let page = self.store.query(q).await?;
            if page.items.is_empty() {
                break;
            }
            for i in &page.items {
                if let Some(k) = i.key() {
                    self.store.delete(&k, None).await?;
                }
            }
        }
        self.store.delete(&conv_key(user, id), None).await?;
        Ok(())
    }

    /// `POST /ai/generate-strategy` without a language model: the documented fallback for the profile (the prompt
    /// has no model to read it, so it does not change the answer; the warning says so).
    pub fn generate_strategy(
        &self,
        symbol: &str,
        timeframe: &str,
        profile: RiskProfile,
        preferred: &[String],
    ) -> GeneratedStrategy {
        let strategy = spec::fallback_strategy(profile, symbol, timeframe);
        let mut warnings = vec![
            "No language model is configured: this is the platform's documented fallback strategy (RSI + EMA \
             crossover with ATR risk management), not a strategy written for your prompt."
                .to_owned(),
        ];
        let unused: Vec<&String> =
            preferred.iter().filter(|p| !strategy.indicators.iter().any(|i| i.eq_ignore_ascii_case(p))).collect();
        if !unused.is_empty() {
            warnings.push(format!(
                "Preferred indicators not used by the fallback: {}.",
                unused.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        GeneratedStrategy {
            id: self.ids.uuid(),
            explanation: format!(
                "Computed, not generated: {} The rules and risk values are the {:?} profile's; save it, then backtest \
                 it on your {symbol} {timeframe} candles and adjust its parameters (the optimizer varies rsi_period, \
                 ema_fast and ema_slow).",
                strategy.description.clone().unwrap_or_default(),
                profile
            ),
            strategy,
            warnings,
            suggested_improvements: vec![
                "Backtest it (POST /api/v1/backtest/run) before trading it.".to_owned(),
                "Optimize ema_fast and ema_slow with the constraint ema_fast < ema_slow, and check the result with a \
                 walk-forward analysis."
                    .to_owned(),
                "Add a session or volatility filter if most losses come from one session (see /ai/recommendations)."
                    .to_owned(),
            ],
        }
    }
}
