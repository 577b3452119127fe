//! Chat (issue 17): conversations stored per user. With a language model configured, the model answers from the
//! caller's grounding ([`super::context`]) and the conversation's newest [`HISTORY_MESSAGES`] messages, within the
//! caller's daily token budget ([`super::budget`]); if the model fails (timeout, garbage, half a stream), the
//! computed answer is given instead, saying why. Without a model, replies are computed from the caller's own data by
//! what the message asks about (a symbol → its analysis; positions; the account; performance and advice; the market
//! overview), and otherwise a plain statement of what can be answered without a model.
//!
//! Store layout (one table): `USER#<uid>` / `AICONV#<conversation uuidv7>` ([`ConversationRecord`]: title, message
//! count) and `USER#<uid>` / `AIMSG#<conversation>#<message uuidv7>` ([`MessageRecord`]); a turn writes the two
//! messages and the count in one transaction, conditional on the conversation (an exchange racing a delete is
//! refused, never half-written).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::budget::estimate_tokens;
use super::error::{AiError, AiResult};
use super::model::ModelChoice;
use super::prompts::{self, ContextType};
use super::service::{AiService, COMPUTED_LABEL};
use crate::keys::user_pk;
use crate::ports::{CancelReason, Condition, Item, Key, Query, StoreError, TxOp, Update};
use crate::ports::{ChatMessage, Completion, CompletionRequest, Role};
use crate::trading::orders::queries::ListFilter;

/// Longest chat message or strategy prompt, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4_000;
/// Most messages in one conversation.
pub const MAX_MESSAGES: u32 = 500;
/// Conversations a list returns at most.
pub const MAX_CONVERSATIONS_PAGE: u32 = 100;
/// The original's title rule: the message, cut to 50 characters + "...".
pub const TITLE_CHARS: usize = 50;
/// Messages of the conversation sent with a new one (the newest; the original sent the oldest 20).
pub const HISTORY_MESSAGES: u32 = 20;
/// The chat's answer length (the original's `max_tokens`).
pub const CHAT_MAX_TOKENS: u32 = 2000;
/// The original's sampling temperature.
pub const TEMPERATURE: f32 = 0.7;

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
    /// The provider's count for an assistant message (the original never stored it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_used: Option<u32>,
}

/// A chat turn's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub reply: String,
    pub conversation_id: Uuid,
    /// Tokens the provider counted (0 for a computed answer).
    pub tokens_used: u32,
    /// `provider/model` that answered; `None` when the answer is computed.
    pub model: Option<String>,
    /// Why the configured model did not answer, when it did not.
    pub model_error: Option<String>,
}

/// What a [`AiService::chat`] turn sends to the model.
struct Turn<'a> {
    user: Uuid,
    message: &'a str,
    history: Vec<MessageRecord>,
    kind: ContextType,
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

/// The symbols named in `message`, in the instrument list's order.
pub fn symbols_in(message: &str) -> Vec<&'static str> {
    let lower = message.to_ascii_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    nusatrade_domain::instrument::INSTRUMENTS
        .iter()
        .filter(|i| words.iter().any(|w| w.eq_ignore_ascii_case(i.symbol)))
        .map(|i| i.symbol)
        .collect()
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
    pub async fn chat(
        &self,
        user: Uuid,
        message: &str,
        conversation: Option<Uuid>,
        kind: ContextType,
    ) -> AiResult<Reply> {
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
        let history = if conv.message_count == 0 { Vec::new() } else { self.history(user, conv.id).await? };
        let mut out = self.reply(Turn { user, message, history, kind }).await?;
        out.conversation_id = conv.id;
        let question =
            MessageRecord { role: "user".into(), content: message.to_owned(), created_at: now, tokens_used: None };
        let answer = MessageRecord {
            role: "assistant".into(),
            content: out.reply.clone(),
            created_at: self.clock.now(),
            tokens_used: Some(out.tokens_used),
        };
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
            Ok(()) => Ok(out),
            Err(StoreError::TransactionCanceled(r)) if r.contains(&CancelReason::ConditionalCheckFailed) => {
                Err(AiError::ConversationNotFound)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The newest [`HISTORY_MESSAGES`] messages of a conversation, oldest first.
    async fn history(&self, user: Uuid, conv: Uuid) -> AiResult<Vec<MessageRecord>> {
        let q = Query::partition(user_pk(user)).sk_prefix(msg_prefix(conv)).descending().limit(HISTORY_MESSAGES);
        let page = self.store.query(q).await?;
        let mut out: Vec<MessageRecord> = page.items.iter().map(|i| i.to_record()).collect::<Result<_, _>>()?;
        out.reverse();
        Ok(out)
    }

    /// The model's answer to a turn, or the computed one (with the reason when a configured model failed).
    async fn reply(&self, turn: Turn<'_>) -> AiResult<Reply> {
        let computed = |reply: String, model_error: Option<String>| Reply {
            reply,
            conversation_id: Uuid::nil(),
            tokens_used: 0,
            model: None,
            model_error,
        };
        let choice = match self.models.current().await {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(computed(self.answer(turn.user, turn.message).await?, None)),
            Err(e) => {
                tracing::warn!(error = %e, "the configured language model cannot be used");
                let text = self.answer(turn.user, turn.message).await?;
                return Ok(computed(
                    format!("The language model is not usable right now ({e}).\n\n{text}"),
                    Some(e.to_string()),
                ));
            }
        };
        let data = self.grounding(turn.user, turn.message).await;
        let mut messages: Vec<ChatMessage> = turn
            .history
            .iter()
            .map(|m| ChatMessage {
                role: if m.role == "assistant" { Role::Assistant } else { Role::User },
                content: m.content.clone(),
            })
            .collect();
        messages.push(ChatMessage::user(turn.message));
        let request = CompletionRequest {
            system: prompts::chat_system(turn.kind, &data),
            messages,
            max_tokens: CHAT_MAX_TOKENS,
            temperature: TEMPERATURE,
        };
        match self.complete(turn.user, &choice, &request, None).await {
            Ok(done) => Ok(Reply {
                reply: if done.truncated {
                    format!("{}\n\n[The answer was cut at the length limit.]", done.text)
                } else {
                    done.text
                },
                conversation_id: Uuid::nil(),
                tokens_used: done.usage.total(),
                model: Some(format!("{}/{}", choice.model.provider(), choice.model.model())),
                model_error: None,
            }),
            Err(AiError::Model(e)) => {
                let text = self.answer(turn.user, turn.message).await?;
                Ok(computed(format!("The language model could not answer ({e}).\n\n{text}"), Some(e.to_string())))
            }
            Err(e) => Err(e),
        }
    }

    /// One completion within `user`'s daily budget: reserves the worst case, settles to the provider's count (or
    /// releases on failure), and logs provider, model, tokens and latency (never the prompt). With `deltas`, the
    /// answer streams into it.
    pub(crate) async fn complete(
        &self,
        user: Uuid,
        choice: &ModelChoice,
        request: &CompletionRequest,
        deltas: Option<mpsc::Sender<String>>,
    ) -> AiResult<Completion> {
        let estimate = estimate_tokens(&request.system)
            .saturating_add(request.messages.iter().map(|m| estimate_tokens(&m.content)).sum::<u32>())
            .saturating_add(request.max_tokens);
        let reservation = self.budget.reserve(user, estimate, choice.daily_tokens).await?;
        let started = std::time::Instant::now();
        let (provider, model) = (choice.model.provider(), choice.model.model().to_owned());
        let result = match deltas {
            Some(tx) => choice.model.stream(request, tx).await,
            None => choice.model.complete(request).await,
        };
        let ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(done) => {
                let counted = if done.usage.total() == 0 { estimate } else { done.usage.total() };
                self.budget.settle(reservation, counted).await?;
                tracing::info!(%user, provider, model, input_tokens = done.usage.input_tokens,
                    output_tokens = done.usage.output_tokens, truncated = done.truncated, ms, "language model answered");
                metrics::counter!("ai_tokens_total", "provider" => provider).increment(u64::from(counted));
                Ok(done)
            }
            Err(e) => {
                self.budget.release(reservation).await;
                tracing::warn!(%user, provider, model, error = %e, ms, "language model failed");
                metrics::counter!("ai_model_failures_total", "provider" => provider).increment(1);
                Err(AiError::Model(e))
            }
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
}
