"""bench/nezha.py: the Nezha TrainTicket CSV rows as per-line records, on rows copied from
data/nezha_trainticket/."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pytest

from bench.nezha import (
    COLUMNS,
    find_days,
    log_text,
    parse_row,
    read_rows,
    split_header,
    timestamp_ms,
    traces,
)

HEADER = ",".join(COLUMNS)

# fault_free_2023-01-29/log/08_50_log.csv.gz
INFO = (
    "2023-01-29T08:48:42.425293566Z,1674982122425293566,33.33.33.116,"
    "ts-travel-service-64469b5b48-25zj6,server,49a51828322183eb20bfe4ace3060000,083e5d40259e7999,"
    '"{""log"":""16:48:42.424 INFO  t.s.TravelServiceImpl#532 TraceID: '
    "49a51828322183eb20bfe4ace3060000 SpanID: 083e5d40259e7999 [getRouteByRouteId][Get Route By "
    "Id][Route is: Route(id=f3d4d4ef-693b-4456-8eed-59c0d717dd08, stations=[shanghai, suzhou], "
    'distances=[0, 50], startStation=shanghai, endStation=suzhou)]\\n"",""stream"":""stdout"",'
    '""time"":""2023-01-29T08:48:42.425293566Z""}"'
)
WARN = (
    "2023-01-29T08:50:08.262002401Z,1674982208262002401,33.33.33.80,"
    "ts-inside-payment-service-6f94c49ccd-4rdb2,server,693f361289b8717c712f6a6d9d0fb008,"
    'ea45beaf35dc6388,"{""log"":""16:50:08.261 WARN  i.s.InsidePaymentServiceImpl#71 TraceID: '
    "693f361289b8717c712f6a6d9d0fb008 SpanID: ea45beaf35dc6388 [Inside Payment Service.pay]"
    '[Order status Not allowed to Pay]\\n"",""stream"":""stdout"",""time"":'
    '""2023-01-29T08:50:08.262002401Z""}"'
)
ERROR = (
    "2023-01-29T08:48:42.468514241Z,1674982122468514241,33.33.33.155,"
    "ts-food-service-f5756978c-k8vqf,server,49a51828322183eb20bfe4ace3060000,82c5151cc6058983,"
    '"{""log"":""16:48:42.468 ERROR f.s.FoodServiceImpl#302 TraceID: '
    "49a51828322183eb20bfe4ace3060000 SpanID: 82c5151cc6058983 [getAllFood][Get the Get Food "
    'Request Failed!][foodStoresListResult is null][date: 2021-07-14, tripId: D1345]\\n"",'
    '""stream"":""stdout"",""time"":""2023-01-29T08:48:42.468514241Z""}"'
)
# rca_2023-01-29/log/09_21_log.csv.gz: TimeUnixNano is garbage, Timestamp has no zone.
BAD_NANOS = (
    "2023-01-29T09:20:29.295,-6795364578871345152,33.33.33.167,"
    "ts-travel2-service-5c66d57d58-6mp2b,server,e8a3352051e85c13136b27945b8cab5b,dea06c5b784cbd1d,"
    '"{""log"":""17:20:29.299 ERROR o.a.c.c.C.[.[.[.[dispatcherServlet]#175 TraceID: '
    "e8a3352051e85c13136b27945b8cab5b SpanID: dea06c5b784cbd1d Servlet.service() for servlet "
    "[dispatcherServlet] in context with path [] threw exception [Request processing failed]"
    ' with root cause\\n"",""stream"":""stdout"",""time"":""2023-01-29T09:20:29.299583319Z""}"'
)
# rca_2023-01-29/log/10_06_log.csv.gz: another row's tail glued after the JSON (10 columns).
GLUED = (
    "2023-01-29T10:06:03.361647039Z,1674986763361647039,33.33.33.76,"
    "ts-user-service-687d654649-lrcwv,server,24b5c62bafb05a6974660c972c0f946a,e9a50b7b30baea63,"
    '"{""log"":""18:06:03.361 INFO  u.c.UserController#48 TraceID: '
    "24b5c62bafb05a6974660c972c0f946a SpanID: e9a50b7b30baea63 [getUserByUserId][Get user by "
    'user id][UserId: 4d2a46c7-71cb-4cf1-b5bb-b68406d9da6f]\\n"",""stream"":""stdout"",""time"":'
    '""2023-01-29T10:06:03.361647039Z""}"ulate distance][calculate time：175  time: Sat May 04 '
    '12:46:52 CST 2013]\\n"",""stream"":""stdout"",""time"":""2023-01-29T10:06:03.254774537Z""}"'
)


def row_of(line: str) -> list[str]:
    return next(csv.reader(io.StringIO(line)))


def test_info_row() -> None:
    r = parse_row(row_of(INFO))
    assert r.trace_id == "49a51828322183eb20bfe4ace3060000"
    assert r.ts_ms == 1674982122425
    assert r.service == "ts-travel-service"
    assert r.pod == "ts-travel-service-64469b5b48-25zj6"
    assert r.level == "INFO"
    assert r.logger == "t.s.TravelServiceImpl#532"
    assert r.message.startswith("[getRouteByRouteId][Get Route By Id][Route is: Route(id=")
    assert r.message.endswith("endStation=suzhou)]")
    assert "TraceID" not in r.message and "16:48:42" not in r.message
    assert not r.trailing_garbage


@pytest.mark.parametrize(
    ("line", "level", "service", "message"),
    [
        (
            WARN,
            "WARN",
            "ts-inside-payment-service",
            "[Inside Payment Service.pay][Order status Not allowed to Pay]",
        ),
        (
            ERROR,
            "ERROR",
            "ts-food-service",
            "[getAllFood][Get the Get Food Request Failed!][foodStoresListResult is null]"
            "[date: 2021-07-14, tripId: D1345]",
        ),
    ],
)
def test_levels_and_messages(line: str, level: str, service: str, message: str) -> None:
    r = parse_row(row_of(line))
    assert (r.level, r.service, r.message) == (level, service, message)


def test_time_comes_from_timestamp_not_the_broken_nanos() -> None:
    r = parse_row(row_of(BAD_NANOS))
    assert r.ts_ms == timestamp_ms("2023-01-29T09:20:29.295Z") == 1674984029295
    assert r.level == "ERROR"
    assert r.logger == "o.a.c.c.C.[.[.[.[dispatcherServlet]#175"
    assert r.message.startswith("Servlet.service() for servlet [dispatcherServlet]")


def test_glued_row_keeps_its_own_line() -> None:
    row = row_of(GLUED)
    assert len(row) == 10
    r = parse_row(row)
    assert r.trailing_garbage
    assert r.service == "ts-user-service"
    assert r.message.endswith("[UserId: 4d2a46c7-71cb-4cf1-b5bb-b68406d9da6f]")
    assert "ulate distance" not in r.message


def test_timestamp_forms() -> None:
    assert timestamp_ms("2023-01-29T08:48:42.425293566Z") == 1674982122425
    assert timestamp_ms("2023-01-29T08:48:42Z") == 1674982122000
    assert timestamp_ms("2023-01-29T08:48:42.4") == 1674982122400
    with pytest.raises(ValueError):
        timestamp_ms("16:48:42.424")


def test_header_split_without_trace_ids_and_without_a_header() -> None:
    assert split_header("16:48:42.424 WARN  c.a.n.c.Foo#12 registry down\n") == (
        "WARN",
        "c.a.n.c.Foo#12",
        "registry down",
    )
    assert split_header("\tat java.lang.Thread.run(Thread.java:748)\n") == (
        None,
        None,
        "at java.lang.Thread.run(Thread.java:748)",
    )
    assert log_text("not json") == ("not json", False)


def test_short_rows_and_rows_without_a_trace_are_refused() -> None:
    with pytest.raises(ValueError, match="columns"):
        parse_row(row_of(INFO)[:7])
    no_trace = row_of(INFO)
    no_trace[5] = ""
    with pytest.raises(ValueError, match="TraceID"):
        parse_row(no_trace)


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join([HEADER, *lines]) + "\n")


def test_read_rows_drops_repeats_across_minute_files_and_sorts_by_time(tmp_path: Path) -> None:
    a, b = tmp_path / "08_48_log.csv.gz", tmp_path / "08_49_log.csv.gz"
    _write(a, [ERROR, INFO])
    _write(b, [INFO, WARN])  # INFO repeated: minute files overlap
    records, dropped = read_rows([b, a])
    assert dropped == 1
    assert [r.level for r in records] == ["INFO", "ERROR", "WARN"]
    by_trace = traces(records)
    assert [len(v) for v in by_trace.values()] == [2, 1]
    assert [r.level for r in by_trace["49a51828322183eb20bfe4ace3060000"]] == ["INFO", "ERROR"]


def test_read_rows_refuses_other_columns(tmp_path: Path) -> None:
    p = tmp_path / "x.csv.gz"
    with gzip.open(p, "wt") as fh:
        fh.write("a,b\n1,2\n")
    with pytest.raises(ValueError, match="unexpected columns"):
        read_rows([p])


def test_find_days(tmp_path: Path) -> None:
    _write(tmp_path / "rca_2023-01-29" / "log" / "08_43_log.csv.gz", [INFO])
    (tmp_path / "rca_2023-01-29" / "2023-01-29-fault_list.json").write_text("{}")
    _write(tmp_path / "fault_free_2023-01-29" / "log" / "08_50_log.csv.gz", [WARN])
    _write(tmp_path / "fault_free_2023-01-30" / "log" / "09_00_log.csv.gz", [WARN])
    (tmp_path / "README.md").write_text("not a day")
    days = find_days(tmp_path)
    assert [d.name for d in days] == ["2023-01-29", "2023-01-30"]
    first, second = days
    assert [p.name for p in first.rca_logs] == ["08_43_log.csv.gz"]
    assert [p.name for p in first.fault_free_logs] == ["08_50_log.csv.gz"]
    assert first.fault_list is not None and first.fault_list.name.endswith("fault_list.json")
    assert second.rca_logs == () and second.fault_list is None
