#!/usr/bin/env python3
"""backtesting.py 0.6.6 reference run for the Rust engine (shared/backtest/tests/backtesting_py.rs).

    reference.py CSV              one run; prints JSON: every trade, every statistic, the equity curve
    reference.py CSV --time N     times N runs of Backtest(...).run(); prints the median seconds as JSON

The strategy is backtesting.py's own SmaCross (backtesting/test/_test.py and the documentation): SMA(10) and
SMA(20) of the close (backtesting.test.SMA, a pandas rolling mean); on a crossover up `position.close(); buy()`,
on a crossover down `position.close(); sell()` (backtesting.lib.crossover). Backtest settings: cash 10_000,
commission .002, margin 1 (no leverage), exclusive_orders=True, no spread, trade_on_close=False,
finalize_trades=False (a trade still open at the end is valued in the equity, not listed).

JSON conventions: times are Unix seconds (the CSV's naive timestamps read as UTC), durations are seconds, NaN is
null and infinities are the strings "inf" / "-inf".
"""

import argparse
import json
import math
import statistics
import sys
import time
import warnings

import numpy as np
import pandas as pd

import backtesting
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from backtesting.test import SMA

CASH = 10_000
COMMISSION = 0.002
MARGIN = 1.0


class SmaCross(Strategy):
    fast = 10
    slow = 20

    def init(self):
        self.sma1 = self.I(SMA, self.data.Close, self.fast)
        self.sma2 = self.I(SMA, self.data.Close, self.slow)

    def next(self):
        if crossover(self.sma1, self.sma2):
            self.position.close()
            self.buy()
        elif crossover(self.sma2, self.sma1):
            self.position.close()
            self.sell()


def number(v):
    """A JSON-safe number: Timestamp -> Unix seconds, Timedelta -> seconds, NaN -> None, inf -> string."""
    if v is None:
        return None
    if isinstance(v, pd.Timestamp):
        return int(v.as_unit("ns").value // 1_000_000_000)
    if isinstance(v, pd.Timedelta):
        return v.total_seconds()
    if v is pd.NaT:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    f = float(v)
    if math.isnan(f):
        return None
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return f


def backtest(data):
    return Backtest(data, SmaCross, cash=CASH, commission=COMMISSION, margin=MARGIN, exclusive_orders=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("csv", help="OHLCV CSV in backtesting.py's layout (e.g. ../shared/data/EURUSD.csv)")
    p.add_argument("--time", type=int, metavar="N", help="time N runs and print the median seconds")
    args = p.parse_args()

    data = pd.read_csv(args.csv, index_col=0, parse_dates=True)
    warnings.simplefilter("ignore")  # "trades remain open", margin cancellations: expected, not errors

    if args.time:
        if not 1 <= args.time <= 1000:
            sys.exit("--time must be within 1..=1000")
        secs = []
        for _ in range(args.time):
            bt = backtest(data)
            t0 = time.perf_counter()
            bt.run()
            secs.append(time.perf_counter() - t0)
        json.dump({"runs": args.time, "median_seconds": statistics.median(secs), "bars": len(data)}, sys.stdout)
        print()
        return

    stats = backtest(data).run()
    trades = stats["_trades"]
    out = {
        "backtesting_version": backtesting.__version__,
        "bars": len(data),
        "trades": [
            {
                "size": number(t.Size),
                "entry_bar": number(t.EntryBar),
                "exit_bar": number(t.ExitBar),
                "entry_price": number(t.EntryPrice),
                "exit_price": number(t.ExitPrice),
                "pnl": number(t.PnL),
                "return_pct": number(t.ReturnPct),
                "commission": number(t.Commission),
                "entry_time": number(t.EntryTime),
                "exit_time": number(t.ExitTime),
            }
            for t in trades.itertuples(index=False)
        ],
        "stats": {k: number(v) for k, v in stats.items() if not k.startswith("_")},
        "equity": [number(v) for v in stats["_equity_curve"]["Equity"]],
    }
    json.dump(out, sys.stdout, allow_nan=False)
    print()


if __name__ == "__main__":
    main()
