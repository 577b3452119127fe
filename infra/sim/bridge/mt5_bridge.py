"""NusaTrade MT5 bridge: JSON lines on stdin/stdout <-> the official MetaTrader5 package.

Shipped inside the `nusatrade` binary and started by `nusatrade connector --mt5 terminal`. It only translates:
every decision (what to send, de-duplication, the connector protocol) is made by the connector.

Request:  {"id": 1, "method": "positions_get", "params": {"ticket": 123}}
Answer:   {"id": 1, "ok": true, "result": ...}  or  {"id": 1, "ok": false, "error": {"code": -1, "message": "..."}}

Terminal settings come from the environment (never the command line): NUSATRADE_MT5_PATH, NUSATRADE_MT5_LOGIN,
NUSATRADE_MT5_PASSWORD, NUSATRADE_MT5_SERVER. The password is never printed. Logs go to stderr.
"""

import json
import os
import sys
from datetime import datetime, timezone

import MetaTrader5 as mt5

TIMEFRAMES = {
    "M1": "TIMEFRAME_M1", "M5": "TIMEFRAME_M5", "M15": "TIMEFRAME_M15", "M30": "TIMEFRAME_M30",
    "H1": "TIMEFRAME_H1", "H4": "TIMEFRAME_H4", "D1": "TIMEFRAME_D1", "W1": "TIMEFRAME_W1",
}


class CallFailed(Exception):
    pass


def log(msg):
    sys.stderr.write("mt5_bridge: %s\n" % msg)
    sys.stderr.flush()


def plain(value):
    """Named tuples (`_asdict`), tuples and numpy rows as plain JSON values."""
    if value is None:
        return None
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if hasattr(value, "dtype") and getattr(value.dtype, "names", None):  # a numpy structured row
        return {name: plain(value[name]) for name in value.dtype.names}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def failed(what):
    code, message = mt5.last_error()
    raise CallFailed((code, "%s failed: %s" % (what, message)))


def utc(seconds):
    return datetime.fromtimestamp(int(seconds), tz=timezone.utc)


def initialize(_):
    kwargs = {}
    path = os.environ.get("NUSATRADE_MT5_PATH")
    login = os.environ.get("NUSATRADE_MT5_LOGIN")
    password = os.environ.get("NUSATRADE_MT5_PASSWORD")
    server = os.environ.get("NUSATRADE_MT5_SERVER")
    if login:
        kwargs["login"] = int(login)
    if password:
        kwargs["password"] = password
    if server:
        kwargs["server"] = server
    ok = mt5.initialize(path, **kwargs) if path else mt5.initialize(**kwargs)
    if not ok:  # with a login, initialize() also logs in (authorization failures land here)
        failed("initialize")
    info = plain(mt5.terminal_info()) or {}
    keep = ("name", "company", "connected", "trade_allowed")
    return {"terminal": {k: info[k] for k in keep if k in info}, "version": plain(mt5.version())}


def account_info(_):
    info = mt5.account_info()
    return plain(info) if info is not None else failed("account_info")


def symbols_get(_):
    """The names of every symbol the terminal offers (names only: a broker lists thousands)."""
    rows = mt5.symbols_get()
    if rows is None:
        failed("symbols_get")
    return [s.name for s in rows[:20000]]


def symbol_info(p):
    info = mt5.symbol_info(p["symbol"])
    return plain(info)


def symbol_select(p):
    return bool(mt5.symbol_select(p["symbol"], bool(p.get("enable", True))))


def symbol_info_tick(p):
    return plain(mt5.symbol_info_tick(p["symbol"]))


def positions_get(p):
    rows = mt5.positions_get(ticket=int(p["ticket"])) if "ticket" in p else mt5.positions_get()
    if rows is None:
        code, _ = mt5.last_error()
        if code in (1, 0):  # no positions
            return []
        failed("positions_get")
    return plain(rows)


def history(fn, name, p):
    if "ticket" in p:
        rows = fn(ticket=int(p["ticket"]))
    elif "position" in p:
        rows = fn(position=int(p["position"]))
    else:
        rows = fn(utc(p["date_from"]), utc(p["date_to"]))
    if rows is None:
        code, _ = mt5.last_error()
        if code in (1, 0):
            return []
        failed(name)
    return plain(rows)


def history_deals_get(p):
    return history(mt5.history_deals_get, "history_deals_get", p)


def history_orders_get(p):
    return history(mt5.history_orders_get, "history_orders_get", p)


def order_send(p):
    request = dict(p)
    result = mt5.order_send(request)
    if result is None:
        failed("order_send")
    out = plain(result)
    out.pop("request", None)
    return out


def copy_rates_range(p):
    tf = TIMEFRAMES.get(p["timeframe"])
    if tf is None:
        raise CallFailed((-2, "unknown timeframe %s" % p["timeframe"]))
    rows = mt5.copy_rates_range(p["symbol"], getattr(mt5, tf), utc(p["date_from"]), utc(p["date_to"]))
    if rows is None:
        failed("copy_rates_range")
    return [plain(r) for r in rows]


def shutdown(_):
    mt5.shutdown()
    return True


METHODS = {f.__name__: f for f in (initialize, account_info, symbols_get, symbol_info, symbol_select,
                                    symbol_info_tick, positions_get, history_deals_get, history_orders_get, order_send,
                                    copy_rates_range, shutdown)}


def main():
    log("started (MetaTrader5 %s)" % getattr(mt5, "__version__", "?"))
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        rid, req = None, {}
        try:
            req = json.loads(line)
            rid = req.get("id")
            method = METHODS.get(req.get("method"))
            if method is None:
                raise CallFailed((-2, "unknown method %s" % req.get("method")))
            answer = {"id": rid, "ok": True, "result": method(req.get("params") or {})}
        except CallFailed as e:
            code, message = e.args[0]
            answer = {"id": rid, "ok": False, "error": {"code": code, "message": message}}
        except Exception as e:  # a bug here must not kill the bridge
            answer = {"id": rid, "ok": False, "error": {"code": -1, "message": "%s: %s" % (type(e).__name__, e)}}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
        if req.get("method") == "shutdown":
            break


if __name__ == "__main__":
    main()
