"""A stand-in for the official `MetaTrader5` Python package, for tests on Linux (standard library only).

The same function names, keyword arguments, named tuples (field names and order of the real package, `_asdict()`)
and constants (ORDER_TYPE_BUY=0, TRADE_ACTION_DEAL=1, TRADE_ACTION_SLTP=6, DEAL_ENTRY_IN=0, TRADE_RETCODE_DONE=10009,
...) as the real one, over a simulated netting-free (hedging) USD account whose state lives in files, so that it
survives the bridge process (as a real terminal outlives its clients) and a test can steer it:

    $MT5_STANDIN_DIR/account.json   the account (written by this module)
    $MT5_STANDIN_DIR/prices.json    {"EURUSD": [bid, ask], ...}  (written by the test; read on every call)
    $MT5_STANDIN_DIR/ctl/offline    present: the terminal is unreachable (every call fails with -10004)
    $MT5_STANDIN_DIR/ctl/crash_after_fill   present: the next filled order_send kills the process before it returns
                                    (the link cut between the fill and its answer); the file is removed
    $MT5_STANDIN_DIR/ctl/reject     contains a retcode: the next order_send is refused with it; removed
    $MT5_STANDIN_DIR/ctl/hang       present: calls block (a terminal that stopped answering)

Stop losses and take profits are checked against prices.json on every call: a position whose SL/TP is reached is
closed at its level with a DEAL_REASON_SL / DEAL_REASON_TP deal, as the trade server would.

A real broker's naming and clock, from the environment (read at import):

    NT_FAKE_MT5_SUFFIX=.m          every symbol carries the broker's suffix (EURUSD.m); prices.json stays keyed by
                                   the plain name (EURUSD)
    NT_FAKE_MT5_PREFIX=m.          … or prefix (m.EURUSD)
    NT_FAKE_MT5_ALIASES=GBPUSD.a=GBPUSD,GBPUSD.b=GBPUSD
                                   more broker names for the same instruments (makes GBPUSD ambiguous)
    NT_FAKE_MT5_UTC_OFFSET=+02:00  the trade server's time zone: every time the module gives (ticks, positions,
                                   deals, orders, bars) is seconds in that zone, and the dates it is given
                                   (history_*_get, copy_rates_range) are read in that zone, as MT5 does
"""

import fnmatch
import json
import os
import time
from collections import namedtuple
from datetime import datetime, timezone

__version__ = "5.0.4999-standin"
__author__ = "NusaTrade tests"

# --- constants (values of the real package) ---------------------------------------------------------------------
ORDER_TYPE_BUY, ORDER_TYPE_SELL = 0, 1
ORDER_TYPE_BUY_LIMIT, ORDER_TYPE_SELL_LIMIT, ORDER_TYPE_BUY_STOP, ORDER_TYPE_SELL_STOP = 2, 3, 4, 5
POSITION_TYPE_BUY, POSITION_TYPE_SELL = 0, 1
TRADE_ACTION_DEAL, TRADE_ACTION_PENDING, TRADE_ACTION_SLTP = 1, 5, 6
TRADE_ACTION_MODIFY, TRADE_ACTION_REMOVE, TRADE_ACTION_CLOSE_BY = 7, 8, 10
DEAL_TYPE_BUY, DEAL_TYPE_SELL, DEAL_TYPE_BALANCE = 0, 1, 2
DEAL_ENTRY_IN, DEAL_ENTRY_OUT, DEAL_ENTRY_INOUT, DEAL_ENTRY_OUT_BY = 0, 1, 2, 3
DEAL_REASON_CLIENT, DEAL_REASON_MOBILE, DEAL_REASON_WEB, DEAL_REASON_EXPERT = 0, 1, 2, 3
DEAL_REASON_SL, DEAL_REASON_TP, DEAL_REASON_SO = 4, 5, 6
ORDER_STATE_STARTED, ORDER_STATE_PLACED, ORDER_STATE_CANCELED, ORDER_STATE_PARTIAL = 0, 1, 2, 3
ORDER_STATE_FILLED, ORDER_STATE_REJECTED, ORDER_STATE_EXPIRED = 4, 5, 6
ORDER_FILLING_FOK, ORDER_FILLING_IOC, ORDER_FILLING_RETURN = 0, 1, 2
ORDER_TIME_GTC, ORDER_TIME_DAY = 0, 1
SYMBOL_FILLING_FOK, SYMBOL_FILLING_IOC = 1, 2
TIMEFRAME_M1, TIMEFRAME_M5, TIMEFRAME_M15, TIMEFRAME_M30 = 1, 5, 15, 30
TIMEFRAME_H1, TIMEFRAME_H4 = 16385, 16388
TIMEFRAME_D1, TIMEFRAME_W1 = 16408, 32769
TRADE_RETCODE_REQUOTE = 10004
TRADE_RETCODE_REJECT = 10006
TRADE_RETCODE_PLACED = 10008
TRADE_RETCODE_DONE = 10009
TRADE_RETCODE_INVALID = 10013
TRADE_RETCODE_INVALID_VOLUME = 10014
TRADE_RETCODE_INVALID_PRICE = 10015
TRADE_RETCODE_INVALID_STOPS = 10016
TRADE_RETCODE_NO_MONEY = 10019
TRADE_RETCODE_PRICE_OFF = 10021
TRADE_RETCODE_NO_CHANGES = 10025
TRADE_RETCODE_INVALID_FILL = 10030
TRADE_RETCODE_POSITION_CLOSED = 10036
RES_S_OK, RES_E_FAIL, RES_E_INVALID_PARAMS, RES_E_NOT_FOUND = 1, -1, -2, -4
RES_E_INTERNAL_FAIL_CONNECT = -10004

# --- named tuples (the real field order) ------------------------------------------------------------------------
AccountInfo = namedtuple("AccountInfo", "login trade_mode leverage limit_orders margin_so_mode trade_allowed "
                         "trade_expert margin_mode currency_digits fifo_close balance credit profit equity margin "
                         "margin_free margin_level margin_so_call margin_so_so margin_initial margin_maintenance "
                         "assets liabilities commission_blocked name server currency company")
TerminalInfo = namedtuple("TerminalInfo", "community_account community_connection connected dlls_allowed "
                          "trade_allowed tradeapi_disabled email_enabled ftp_enabled notifications_enabled mqid build "
                          "maxbars codepage ping_last community_balance retransmission company name language path "
                          "data_path commondata_path")
SymbolInfo = namedtuple("SymbolInfo", "custom chart_mode select visible digits spread trade_mode filling_mode "
                        "trade_stops_level bid ask point trade_contract_size volume_min volume_max volume_step "
                        "currency_base currency_profit currency_margin name path")
Tick = namedtuple("Tick", "time bid ask last volume time_msc flags volume_real")
TradePosition = namedtuple("TradePosition", "ticket time time_msc time_update time_update_msc type magic identifier "
                           "reason volume price_open sl tp price_current swap profit symbol comment external_id")
TradeDeal = namedtuple("TradeDeal", "ticket order time time_msc type entry magic position_id reason volume price "
                       "commission swap profit fee symbol comment external_id")
TradeOrder = namedtuple("TradeOrder", "ticket time_setup time_setup_msc time_done time_done_msc time_expiration type "
                        "type_time type_filling state magic position_id position_by_id reason volume_initial "
                        "volume_current price_open sl tp price_current price_stoplimit symbol comment external_id")
TradeRequest = namedtuple("TradeRequest", "action magic order symbol volume price stoplimit sl tp deviation type "
                          "type_filling type_time expiration comment position position_by")
OrderSendResult = namedtuple("OrderSendResult", "retcode deal order volume price bid ask comment request_id "
                             "retcode_external request")

_SPECS = {  # plain name: (digits, contract size, base, profit currency)
    "EURUSD": (5, 100000, "EUR", "USD"), "GBPUSD": (5, 100000, "GBP", "USD"),
    "USDJPY": (3, 100000, "USD", "JPY"), "XAUUSD": (2, 100, "XAU", "USD"),
}


def _broker_names():
    """The broker's names (NT_FAKE_MT5_PREFIX / _SUFFIX / _ALIASES) -> the plain name."""
    prefix, suffix = os.environ.get("NT_FAKE_MT5_PREFIX", ""), os.environ.get("NT_FAKE_MT5_SUFFIX", "")
    names = {prefix + plain + suffix: plain for plain in _SPECS}
    for pair in filter(None, os.environ.get("NT_FAKE_MT5_ALIASES", "").split(",")):
        name, plain = pair.split("=")
        names[name.strip()] = plain.strip()
    return names


def _utc_offset():
    """NT_FAKE_MT5_UTC_OFFSET (+HH:MM) in seconds."""
    raw = os.environ.get("NT_FAKE_MT5_UTC_OFFSET", "").strip()
    if not raw:
        return 0
    sign = -1 if raw.startswith("-") else 1
    hours, _, minutes = raw.lstrip("+-").partition(":")
    return sign * (int(hours) * 3600 + int(minutes or 0) * 60)


_PLAIN = _broker_names()
SYMBOLS = {name: _SPECS[plain] for name, plain in _PLAIN.items()}  # broker name: spec
SERVER_OFFSET = _utc_offset()

_last_error = (RES_S_OK, "Success")
_initialized = False


class _Rate(tuple):
    """A row of copy_rates_range (numpy.void-like: dtype.names and item access by name)."""

    class dtype:  # noqa: N801
        names = ("time", "open", "high", "low", "close", "tick_volume", "spread", "real_volume")

    def __getitem__(self, key):
        if isinstance(key, str):
            return tuple.__getitem__(self, self.dtype.names.index(key))
        return tuple.__getitem__(self, key)


def _dir():
    d = os.environ.get("MT5_STANDIN_DIR")
    if not d:
        raise RuntimeError("MT5_STANDIN_DIR is not set")
    return d


def _ctl(name):
    return os.path.join(_dir(), "ctl", name)


def _take(name):
    """Consumes a control file: its contents, or None when absent."""
    try:
        with open(_ctl(name)) as f:
            content = f.read().strip()
        os.remove(_ctl(name))
        return content
    except FileNotFoundError:
        return None


def _fail(code, message):
    global _last_error
    _last_error = (code, message)
    return None


def _ok():
    global _last_error
    _last_error = (RES_S_OK, "Success")


def _reachable():
    while os.path.exists(_ctl("hang")):
        time.sleep(0.05)
    if os.path.exists(_ctl("offline")):
        _fail(RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
        return False
    if not _initialized:
        _fail(-10003, "IPC initialize failed, MetaTrader 5 x64 not found")
        return False
    return True


def _prices():
    try:
        with open(os.path.join(_dir(), "prices.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def _load():
    path = os.path.join(_dir(), "account.json")
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {"login": int(os.environ.get("MT5_STANDIN_LOGIN", "5001234")),
                "server": os.environ.get("MT5_STANDIN_SERVER", "StandIn-Demo"),
                "company": "Stand-in Markets Ltd", "password": os.environ.get("MT5_STANDIN_PASSWORD", ""),
                "balance": 10000.0, "leverage": 100, "next_ticket": 50000001, "next_deal": 70000001,
                "positions": [], "deals": [], "orders": []}


def _save(acc):
    path = os.path.join(_dir(), "account.json")
    tmp = path + ".tmp%d" % os.getpid()
    with open(tmp, "w") as f:
        json.dump(acc, f)
    os.replace(tmp, path)


def _now():
    """Now on the trade server's clock (seconds, milliseconds)."""
    t = time.time() + SERVER_OFFSET
    return int(t), int(t * 1000)


def _quote(symbol):
    q = _prices().get(_PLAIN.get(symbol, symbol))
    return (float(q[0]), float(q[1])) if q else None


def _to_usd(symbol, amount, price):
    return amount / price if SYMBOLS[symbol][3] == "JPY" else amount


def _profit(p, close):
    digits, contract, _, _ = SYMBOLS[p["symbol"]]
    sign = 1 if p["type"] == POSITION_TYPE_BUY else -1
    return round(_to_usd(p["symbol"], (close - p["price_open"]) * sign * p["volume"] * contract, close), 2)


def _margin(symbol, volume, price, leverage):
    _, contract, base, _ = SYMBOLS[symbol]
    notional = volume * contract * (1.0 if base == "USD" else price)
    return round(notional / leverage, 2)


def _deal(acc, p, kind, entry, volume, price, profit, reason, order):
    sec, msc = _now()
    d = {"ticket": acc["next_deal"], "order": order, "time": sec, "time_msc": msc, "type": kind, "entry": entry,
         "magic": p.get("magic", 0), "position_id": p["ticket"], "reason": reason, "volume": volume, "price": price,
         "commission": 0.0, "swap": 0.0, "profit": profit, "fee": 0.0, "symbol": p["symbol"], "comment": p["comment"],
         "external_id": ""}
    acc["next_deal"] += 1
    acc["deals"].append(d)
    return d


def _order(acc, kind, state, symbol, volume, price, comment, position, magic, filling, sl=0.0, tp=0.0):
    sec, msc = _now()
    o = {"ticket": acc["next_ticket"], "time_setup": sec, "time_setup_msc": msc, "time_done": sec, "time_done_msc": msc,
         "time_expiration": 0, "type": kind, "type_time": ORDER_TIME_GTC, "type_filling": filling, "state": state,
         "magic": magic, "position_id": position, "position_by_id": 0, "reason": DEAL_REASON_EXPERT,
         "volume_initial": volume, "volume_current": 0.0, "price_open": price, "sl": sl, "tp": tp,
         "price_current": price, "price_stoplimit": 0.0, "symbol": symbol, "comment": comment, "external_id": ""}
    acc["next_ticket"] += 1
    acc["orders"].append(o)
    return o


def _close(acc, p, volume, price, reason, order):
    profit = _profit(dict(p, volume=volume), price)
    kind = DEAL_TYPE_SELL if p["type"] == POSITION_TYPE_BUY else DEAL_TYPE_BUY
    d = _deal(acc, p, kind, DEAL_ENTRY_OUT, volume, price, profit, reason, order)
    acc["balance"] = round(acc["balance"] + profit, 2)
    p["volume"] = round(p["volume"] - volume, 2)
    if p["volume"] <= 0:
        acc["positions"].remove(p)
    return d


def _tick_account():
    """Loads the account, revalues it at prices.json and closes positions whose SL/TP the prices reach."""
    acc = _load()
    changed = False
    for p in list(acc["positions"]):
        q = _quote(p["symbol"])
        if not q:
            continue
        bid, ask = q
        price = bid if p["type"] == POSITION_TYPE_BUY else ask
        p["price_current"] = price
        p["profit"] = _profit(p, price)
        buy = p["type"] == POSITION_TYPE_BUY
        sl_hit = p["sl"] and (price <= p["sl"] if buy else price >= p["sl"])
        tp_hit = p["tp"] and (price >= p["tp"] if buy else price <= p["tp"])
        if sl_hit or tp_hit:
            level = p["sl"] if sl_hit else p["tp"]
            _close(acc, p, p["volume"], level, DEAL_REASON_SL if sl_hit else DEAL_REASON_TP, 0)
            changed = True
    if changed:
        _save(acc)
    return acc


def _position_tuple(p):
    return TradePosition(p["ticket"], p["time"], p["time_msc"], p["time"], p["time_msc"], p["type"], p["magic"],
                         p["ticket"], DEAL_REASON_EXPERT, p["volume"], p["price_open"], p["sl"], p["tp"],
                         p["price_current"], 0.0, p["profit"], p["symbol"], p["comment"], "")


# --- the package's functions ------------------------------------------------------------------------------------
def initialize(path=None, login=None, password=None, server=None, timeout=None, portable=False):
    global _initialized
    while os.path.exists(_ctl("hang")):
        time.sleep(0.05)
    if os.path.exists(_ctl("offline")):
        return bool(_fail(RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection"))
    if path is not None and not os.path.basename(str(path)).lower().startswith("terminal"):
        return bool(_fail(-10003, "IPC initialize failed, MetaTrader 5 x64 not found"))
    _initialized = True
    if login is not None and not login_(login, password, server):
        _initialized = False
        return False
    _ok()
    return True


def login_(login, password=None, server=None, timeout=60000):
    acc = _load()
    expected = acc.get("password") or ""
    if int(login) != acc["login"] or (expected and password != expected) or (server and server != acc["server"]):
        return bool(_fail(-6, "Terminal: Authorization failed"))
    _ok()
    return True


def login(login, password=None, server=None, timeout=60000):  # noqa: A001 - the real name
    if not _reachable():
        return False
    return login_(login, password, server, timeout)


def shutdown():
    global _initialized
    _initialized = False
    return True


def last_error():
    return _last_error


def version():
    return (500, 4999, "5 Dec 2026") if _initialized else _fail(-10003, "not initialized")


def terminal_info():
    if not _reachable():
        return None
    _ok()
    return TerminalInfo(False, False, True, False, True, False, False, False, False, "", 4999, 100000, 1252, 20, 0.0,
                        0.0, "Stand-in Markets Ltd", "MetaTrader 5 stand-in", "English", "/standin", "/standin", "/c")


def account_info():
    if not _reachable():
        return None
    acc = _tick_account()
    profit = round(sum(p["profit"] for p in acc["positions"]), 2)
    margin = round(sum(p["margin"] for p in acc["positions"]), 2)
    equity = round(acc["balance"] + profit, 2)
    level = round(equity / margin * 100, 2) if margin else 0.0
    _ok()
    return AccountInfo(acc["login"], 0, acc["leverage"], 200, 0, True, True, 2, 2, False, acc["balance"], 0.0, profit,
                       equity, margin, round(equity - margin, 2), level, 50.0, 30.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                       "Stand-in Trader", acc["server"], "USD", acc["company"])


def symbol_info(symbol):
    if not _reachable():
        return None
    if symbol not in SYMBOLS:
        return _fail(RES_E_NOT_FOUND, "Terminal: Not found")
    digits, contract, base, quote_ccy = SYMBOLS[symbol]
    q = _quote(symbol) or (0.0, 0.0)
    _ok()
    return SymbolInfo(False, 0, True, True, digits, round((q[1] - q[0]) * 10 ** digits), 4,
                      SYMBOL_FILLING_FOK | SYMBOL_FILLING_IOC, 0, q[0], q[1], 10 ** -digits, contract, 0.01, 100.0,
                      0.01, base, quote_ccy, base, symbol, "Forex\\" + _PLAIN.get(symbol, symbol))


def symbols_total():
    if not _reachable():
        return None
    _ok()
    return len(SYMBOLS)


def symbols_get(group=None):
    """Every symbol the terminal offers (SymbolInfo tuples), filtered by `group` masks (`*`, `!`) when given."""
    if not _reachable():
        return None
    names = [n for n in SYMBOLS if group is None or _group_match(n, group)]
    rows = tuple(symbol_info(n) for n in names)
    _ok()
    return rows


def symbol_select(symbol, enable=True):
    if not _reachable():
        return False
    return symbol in SYMBOLS


def symbol_info_tick(symbol):
    if not _reachable():
        return None
    q = _quote(symbol)
    if symbol not in SYMBOLS or q is None:
        return _fail(RES_E_NOT_FOUND, "Terminal: Not found")
    sec, msc = _now()
    _ok()
    return Tick(sec, q[0], q[1], 0.0, 0, msc, 6, 0.0)


def _group_match(symbol, group):
    ok = False
    for mask in group.split(","):
        mask = mask.strip()
        if mask.startswith("!"):
            if fnmatch.fnmatch(symbol, mask[1:]):
                return False
        elif fnmatch.fnmatch(symbol, mask):
            ok = True
    return ok


def positions_total():
    if not _reachable():
        return None
    return len(_tick_account()["positions"])


def positions_get(symbol=None, group=None, ticket=None):
    if not _reachable():
        return None
    rows = _tick_account()["positions"]
    if ticket is not None:
        rows = [p for p in rows if p["ticket"] == int(ticket)]
    elif symbol is not None:
        rows = [p for p in rows if p["symbol"] == symbol]
    elif group is not None:
        rows = [p for p in rows if _group_match(p["symbol"], group)]
    _ok()
    return tuple(_position_tuple(p) for p in rows)


def orders_get(symbol=None, group=None, ticket=None):
    if not _reachable():
        return None
    _ok()
    return ()  # market execution only: never pending orders


def _history(rows, date_from, date_to, group, ticket, position, time_key, ticket_key):
    if ticket is not None:  # deals: the order's (DEAL_ORDER); orders: the order itself
        return [r for r in rows if r[ticket_key] == int(ticket)]
    if position is not None:
        return [r for r in rows if r["position_id"] == int(position)]
    if date_from is None or date_to is None:
        return None
    lo, hi = _ts(date_from), _ts(date_to)
    rows = [r for r in rows if lo <= r[time_key] <= hi]
    if group is not None:
        rows = [r for r in rows if _group_match(r["symbol"], group)]
    return rows


def _ts(t):
    if isinstance(t, datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=timezone.utc)
        return int(t.timestamp())
    return int(t)


def history_deals_get(date_from=None, date_to=None, group=None, ticket=None, position=None):
    if not _reachable():
        return None
    rows = _history(_tick_account()["deals"], date_from, date_to, group, ticket, position, "time", "order")
    if rows is None:
        return _fail(RES_E_INVALID_PARAMS, "Invalid arguments")
    _ok()
    return tuple(TradeDeal(**d) for d in rows)


def history_orders_get(date_from=None, date_to=None, group=None, ticket=None, position=None):
    if not _reachable():
        return None
    rows = _history(_tick_account()["orders"], date_from, date_to, group, ticket, position, "time_setup", "ticket")
    if rows is None:
        return _fail(RES_E_INVALID_PARAMS, "Invalid arguments")
    _ok()
    return tuple(TradeOrder(**o) for o in rows)


def _result(retcode, comment, request, deal=0, order=0, volume=0.0, price=0.0, bid=0.0, ask=0.0):
    return OrderSendResult(retcode, deal, order, volume, price, bid, ask, comment, 0, 0, request)


def order_send(request):
    if not _reachable():
        return None
    if not isinstance(request, dict) or "action" not in request:
        return _fail(RES_E_INVALID_PARAMS, "Invalid arguments")
    fields = {k: request.get(k, 0) for k in TradeRequest._fields}
    fields["symbol"] = request.get("symbol", "")
    fields["comment"] = request.get("comment", "")
    req = TradeRequest(**fields)
    acc = _tick_account()
    symbol = req.symbol
    if symbol not in SYMBOLS:
        return _result(TRADE_RETCODE_INVALID, "Invalid request", req)
    q = _quote(symbol)
    if q is None:
        return _result(TRADE_RETCODE_PRICE_OFF, "No prices", req)
    bid, ask = q
    forced = _take("reject")
    if forced:
        return _result(int(forced), "Rejected by the stand-in", req, bid=bid, ask=ask)
    digits = SYMBOLS[symbol][0]
    if req.action == TRADE_ACTION_SLTP:
        p = next((p for p in acc["positions"] if p["ticket"] == int(req.position or 0)), None)
        if p is None:
            return _result(TRADE_RETCODE_POSITION_CLOSED, "Position doesn't exist", req)
        sl, tp = round(float(req.sl or 0), digits), round(float(req.tp or 0), digits)
        if sl == p["sl"] and tp == p["tp"]:
            return _result(TRADE_RETCODE_NO_CHANGES, "No changes", req)
        price = bid if p["type"] == POSITION_TYPE_BUY else ask
        if not _stops_ok(p["type"], price, price, sl, tp):
            return _result(TRADE_RETCODE_INVALID_STOPS, "Invalid stops", req)
        p["sl"], p["tp"] = sl, tp
        _save(acc)
        return _result(TRADE_RETCODE_DONE, "Request executed", req)
    if req.action != TRADE_ACTION_DEAL:
        return _result(TRADE_RETCODE_INVALID, "Invalid request", req)
    volume = float(req.volume or 0)
    steps = round(volume / 0.01, 6)
    if volume < 0.01 or volume > 100 or abs(steps - round(steps)) > 1e-6:
        return _result(TRADE_RETCODE_INVALID_VOLUME, "Invalid volume", req)
    if req.type not in (ORDER_TYPE_BUY, ORDER_TYPE_SELL):
        return _result(TRADE_RETCODE_INVALID, "Invalid request", req)
    if req.type_filling not in (ORDER_FILLING_FOK, ORDER_FILLING_IOC):
        return _result(TRADE_RETCODE_INVALID_FILL, "Unsupported filling mode", req)
    fill = ask if req.type == ORDER_TYPE_BUY else bid
    point = 10 ** -digits
    if req.price and abs(float(req.price) - fill) > (req.deviation or 0) * point + point / 2:
        return _result(TRADE_RETCODE_REQUOTE, "Requote", req, bid=bid, ask=ask)
    comment = str(req.comment or "")[:31]
    if req.position:
        p = next((p for p in acc["positions"] if p["ticket"] == int(req.position)), None)
        if p is None:
            return _result(TRADE_RETCODE_POSITION_CLOSED, "Position doesn't exist", req)
        closing = ORDER_TYPE_SELL if p["type"] == POSITION_TYPE_BUY else ORDER_TYPE_BUY
        if req.type != closing or volume > p["volume"] + 1e-9:
            return _result(TRADE_RETCODE_INVALID, "Invalid request", req)
        o = _order(acc, req.type, ORDER_STATE_FILLED, symbol, volume, fill, p["comment"], p["ticket"], req.magic or 0,
                   req.type_filling)
        d = _close(acc, p, volume, fill, DEAL_REASON_EXPERT, o["ticket"])
    else:
        sl, tp = round(float(req.sl or 0), digits), round(float(req.tp or 0), digits)
        if not _stops_ok(req.type, fill, bid if req.type == ORDER_TYPE_BUY else ask, sl, tp):
            return _result(TRADE_RETCODE_INVALID_STOPS, "Invalid stops", req)
        margin = _margin(symbol, volume, fill, acc["leverage"])
        used = sum(p["margin"] for p in acc["positions"])
        equity = acc["balance"] + sum(p["profit"] for p in acc["positions"])
        if margin > equity - used:
            _order(acc, req.type, ORDER_STATE_REJECTED, symbol, volume, fill, comment, 0, req.magic or 0,
                   req.type_filling)
            _save(acc)
            return _result(TRADE_RETCODE_NO_MONEY, "No money", req, bid=bid, ask=ask)
        o = _order(acc, req.type, ORDER_STATE_FILLED, symbol, volume, fill, comment, 0, req.magic or 0,
                   req.type_filling, sl, tp)
        o["position_id"] = o["ticket"]  # MT5: the position's ticket is the ticket of the order that opened it
        sec, msc = _now()
        p = {"ticket": o["ticket"], "time": sec, "time_msc": msc, "type": req.type, "magic": req.magic or 0,
             "volume": volume, "price_open": fill, "sl": sl, "tp": tp,
             "price_current": bid if req.type == ORDER_TYPE_BUY else ask, "profit": 0.0, "symbol": symbol,
             "comment": comment, "margin": margin}
        p["profit"] = _profit(p, p["price_current"])
        acc["positions"].append(p)
        d = _deal(acc, p, req.type, DEAL_ENTRY_IN, volume, fill, 0.0, DEAL_REASON_EXPERT, o["ticket"])
    _save(acc)
    if _take("crash_after_fill") is not None:
        os._exit(17)  # the fill is booked; its answer never leaves
    return _result(TRADE_RETCODE_DONE, "Request executed", req, deal=d["ticket"], order=o["ticket"], volume=volume,
                   price=fill, bid=bid, ask=ask)


def _stops_ok(kind, fill, close, sl, tp):
    if kind == ORDER_TYPE_BUY:
        return (not sl or (sl < close and sl < fill)) and (not tp or (tp > close and tp > fill))
    return (not sl or (sl > close and sl > fill)) and (not tp or (tp < close and tp < fill))


def copy_rates_range(symbol, timeframe, date_from, date_to):
    if not _reachable():
        return None
    seconds = {TIMEFRAME_M1: 60, TIMEFRAME_M5: 300, TIMEFRAME_M15: 900, TIMEFRAME_M30: 1800, TIMEFRAME_H1: 3600,
               TIMEFRAME_H4: 14400, TIMEFRAME_D1: 86400, TIMEFRAME_W1: 604800}.get(timeframe)
    if symbol not in SYMBOLS or seconds is None:
        return _fail(RES_E_INVALID_PARAMS, "Invalid arguments")
    digits = SYMBOLS[symbol][0]
    lo, hi = _ts(date_from), _ts(date_to)
    t = (lo + seconds - 1) // seconds * seconds
    rows = []
    while t <= hi and len(rows) < 100000:
        if datetime.fromtimestamp(t, tz=timezone.utc).weekday() < 5:
            base = 1.1 + ((t // seconds) % 50) * 10 ** -digits
            o, c = round(base, digits), round(base + 2 * 10 ** -digits, digits)
            rows.append(_Rate((t, o, round(c + 10 ** -digits, digits), round(o - 10 ** -digits, digits), c, 42, 15,
                               0)))
        t += seconds
    _ok()
    return tuple(rows)
