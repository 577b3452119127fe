//! Pure domain rules and types of NusaTrade: no I/O, no async, no AWS.
//!
//! Trading (issue 4):
//! * [`money`]: currencies, prices, lots, money and explicit currency conversions (all `rust_decimal`);
//! * [`instrument`]: the instrument catalogue (pip size, digits, contract size, currencies, volume rules) and
//!   symbol normalisation;
//! * [`sizing`]: position size from a risk budget, margin, SL/TP calculation and risk profiles;
//! * [`order`]: the order lifecycle state machine, MT5 retcode classes, realised profit, client order ids;
//! * [`trailing`]: trailing stop and breakeven.
//!
//! Contract references (`§n`) are to `shared/spec/original-contract.md`; design references to `shared/design.md`.

pub mod auth;
pub mod instrument;
pub mod money;
pub mod order;
pub mod performance;
pub mod reconcile;
pub mod sizing;
pub mod trailing;

pub use instrument::{
    INSTRUMENTS, Instrument, InstrumentError, InstrumentKind, MAX_LOT_SIZE, Symbol, VolumeError, lookup,
};
pub use money::{Conversion, Currency, Lots, Money, MoneyError, Price, Side};
pub use order::{
    Change, ClientOrderId, OrderEvent, OrderState, OrderStatus, Refused, Retcode, RetcodeClass, StopsError, Ticket,
    Transition, closed_profit, transition, validate_stops,
};
pub use sizing::{
    PositionSize, RiskProfile, RiskProfiles, SizingError, SizingRequest, SlTp, SlTpRequest, StopLoss, calculate_sl_tp,
    margin_required, position_size,
};
pub use trailing::{StopReason, StopUpdate, TrailingState, TrailingStopSettings, TrailingType, next_stop_loss};
