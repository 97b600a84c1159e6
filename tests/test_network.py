"""cloudedge.timing.network: link arithmetic by hand, monotonicity, break-even and calibration."""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudedge.timing import network as net
from cloudedge.timing.network import Execution, KiB, Link, MiB, Path

LTE, WIFI = net.access_link("lte"), net.access_link("wifi")


def test_paper_rates():
    assert (LTE.up, LTE.down) == (1000 * KiB, 1.36 * MiB)   # Section 4.2.1
    assert WIFI.up == WIFI.down == 9 * MiB


def test_edge_upload_by_hand():
    # 60K over LTE: 15 ms (half of 30 ms rtt) + 61,440 B / 1,024,000 B/s = 0.015 + 0.06
    assert net.edge_path(LTE).upload_time(60 * KiB) == pytest.approx(0.075)
    # 512K over WiFi: 1.5 ms + 512/9216 s
    assert net.edge_path(WIFI).upload_time(512 * KiB) == pytest.approx(0.0015 + 512 / 9216)


def test_cloud_path_by_hand():
    cloud = net.cloud_path(LTE, net.wan_link(rate=500 * KiB, rtt=0.04))
    # latencies 15 + 20 ms; the 500 KiB/s WAN is the bottleneck
    assert cloud.upload_time(100 * KiB) == pytest.approx(0.035 + 0.2)
    # download: LTE down 1.36 MiB/s > WAN, so 40 B at 500 KiB/s
    assert cloud.download_time(40) == pytest.approx(0.035 + 40 / (500 * KiB))
    assert cloud.name == "lte+wan"


def test_response_is_upload_plus_execution_plus_download():
    r = net.response_time(net.edge_path(LTE), 60 * KiB, 0.25, result_bytes=1000)
    assert r.upload == pytest.approx(0.075)
    assert r.download == pytest.approx(0.015 + 1000 / (1.36 * MiB))
    assert r.total == pytest.approx(r.upload + 0.25 + r.download)
    e = net.response_time(net.edge_path(LTE), 100 * KiB, Execution(0.1, 1e-6))
    assert e.execution == pytest.approx(0.1 + 1e-6 * 100 * KiB)


def test_hops_and_hop_latency():
    link = Link("custom", up=1e6, down=2e6, rtt=0.01, hops=3, hop_latency=0.002)
    assert link.one_way == pytest.approx(0.005 + 0.006)
    assert Path((link,)).download_time(2e6) == pytest.approx(0.011 + 1.0)


def test_reduction():
    assert net.reduction(2.0, 0.5) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="baseline must be > 0"):
        net.reduction(0.0, 1.0)


def test_errors():
    with pytest.raises(ValueError, match="up must be a finite rate > 0 bytes/s, got -1"):
        Link("x", up=-1, down=1, rtt=0)
    with pytest.raises(ValueError, match="rtt must be finite seconds >= 0"):
        Link("x", up=1, down=1, rtt=math.inf)
    with pytest.raises(ValueError, match="hops must be an int >= 1"):
        Link("x", up=1, down=1, rtt=0, hops=0)
    with pytest.raises(ValueError, match="one of .'5g', 'lte', 'wifi'.*got 'lte5'"):
        net.access_link("lte5")
    with pytest.raises(ValueError, match="size must be a number of bytes >= 0"):
        net.edge_path(LTE).upload_time(-5)
    with pytest.raises(ValueError, match="needs one or more Link"):
        Path(())


rates = st.floats(1e3, 1e9)
sizes = st.floats(0, 1e9)


@settings(max_examples=100, deadline=None)
@given(sizes, sizes, rates, rates, st.floats(0, 1))
def test_upload_time_grows_with_size_and_falls_with_rate(s1, s2, r1, r2, rtt):
    small, large = sorted((s1, s2))
    slow, fast = sorted((r1, r2))
    path = Path((Link("a", up=slow, down=slow, rtt=rtt),))
    assert path.upload_time(small) <= path.upload_time(large)
    faster = Path((Link("a", up=fast, down=fast, rtt=rtt),))
    assert faster.upload_time(large) <= path.upload_time(large)


@settings(max_examples=100, deadline=None)
@given(sizes, rates, rates, st.floats(0, 1))
def test_an_extra_link_never_speeds_a_transfer_up(size, access_rate, wan_rate, wan_rtt):
    access = Link("a", up=access_rate, down=access_rate, rtt=0.01)
    edge, cloud = net.edge_path(access), net.cloud_path(access, net.wan_link(wan_rate, wan_rtt))
    assert cloud.upload_time(size) >= edge.upload_time(size)
    assert cloud.download_time(size) >= edge.download_time(size)


def test_break_even_size_by_hand():
    # Same 1 MB/s link to both; the cloud is 0.1 s further away, computes in 0.1 s
    # instead of 0.3 s, but prepares images at 3 us/B against the edge's 1 us/B.
    access = Link("a", up=1e6, down=1e6, rtt=0.0)
    edge = Path((access,))
    cloud = Path((access, Link("w", up=1e6, down=1e6, rtt=0.1)))
    c = net.break_even_size(edge, cloud, Execution(0.3, 1e-6), Execution(0.1, 3e-6), result_bytes=0)
    # gap(s) = 0.1 (latency) - 0.2 (compute) + 2e-6 s  ->  s* = 50,000 bytes
    assert c.cloud_wins == "below" and c.size == pytest.approx(5e4)
    for s, cloud_faster in ((4.9e4, True), (5.1e4, False)):
        rc = net.response_time(cloud, s, Execution(0.1, 3e-6), 0).total
        re = net.response_time(edge, s, Execution(0.3, 1e-6), 0).total
        assert (rc < re) == cloud_faster


def test_break_even_kinds():
    access = Link("a", up=1e6, down=1e6, rtt=0.0)
    edge, cloud = Path((access,)), Path((access, Link("w", up=1e6, down=1e6, rtt=0.1)))
    assert net.break_even_size(edge, cloud, Execution(0.01), Execution(0.01)).cloud_wins == "never"
    assert net.break_even_size(edge, cloud, Execution(1.0), Execution(0.01)).cloud_wins == "always"
    c = net.break_even_size(edge, cloud, Execution(0.0, 1e-5), Execution(0.0, 1e-6))
    assert c.cloud_wins == "above" and c.size > 0


def test_break_even_wan_rate_is_the_slowest_that_wins():
    edge_exec, cloud_exec = Execution(0.5), Execution(0.05)
    rate = net.break_even_wan_rate(100 * KiB, LTE, edge_exec, cloud_exec, wan_rtt=0.04)
    edge_rt = net.response_time(net.edge_path(LTE), 100 * KiB, edge_exec).total

    def cloud_rt(r):
        return net.response_time(net.cloud_path(LTE, net.wan_link(r, 0.04)), 100 * KiB, cloud_exec).total

    assert cloud_rt(rate) <= edge_rt < cloud_rt(rate * 0.999)
    # a cloud no faster than the edge never wins, whatever the WAN
    assert net.break_even_wan_rate(100 * KiB, LTE, edge_exec, edge_exec) is None


def test_implied_wan_bandwidth_reproduces_the_saving():
    rate = net.implied_wan_bandwidth(LTE, 0.5542, 512 * KiB)
    edge = net.edge_path(LTE).upload_time(512 * KiB)
    cloud = net.cloud_path(LTE, net.wan_link(rate)).upload_time(512 * KiB)
    assert net.reduction(cloud, edge) == pytest.approx(0.5542)
    assert 400 * KiB < rate < 500 * KiB        # the default WAN rate is this, rounded
    with pytest.raises(ValueError, match="no WAN rate gives it"):
        net.implied_wan_bandwidth(LTE, 0.01, 512 * KiB)
    with pytest.raises(ValueError, match="fraction in .0, 1."):
        net.implied_wan_bandwidth(LTE, 1.5, 512 * KiB)


def test_execution_scaling():
    e = Execution(0.4, 2e-8).scaled(4)
    assert (e.base, e.per_byte) == (0.1, 5e-9)
    with pytest.raises(ValueError, match="speedup must be > 0"):
        Execution(1.0).scaled(0)
