-- established-udp.lua: UDP datagrams on a fixed set of flows through one rvsd VIP.
-- For Pktgen-DPDK 23.06.1 built with Lua; read README.md in this directory first.
--   pktgen port 0: towards rvsd's client port, sends the datagrams
--   pktgen port 1: on rvsd's servers port, counts what rvsd forwarded to the real servers
-- rvsd creates one UDP connection per flow on its first datagram; every later datagram of the
-- flow is forwarded on that connection (the established path).

-- Settings ---------------------------------------------------------------------------------
local DUT_MAC = "56:48:4f:53:54:00" -- rvsd's client port (its log: "port client = ...: mac ...")
local SRC_MAC = "02:00:00:00:01:01" -- pktgen port 0 (mac= of its net_virtio_user vdev)
local VIP, VIP_PORT = "198.51.100.100", 9000
-- Flows = ADDRS x PORTS client (address, port) pairs. Pktgen steps the source address and the
-- source port together, one step per packet; when ADDRS and PORTS have no common factor the
-- pair runs through every combination, whatever packet a run starts from.
local ADDRS, PORTS = 8, 125 -- 1000 flows: 198.51.100.10-17 x ports 10000-10124
local SRC_IP_FIRST, SRC_PORT_FIRST = "198.51.100.10", 10000
local SIZE = 64 -- frame bytes, FCS included
local RATE = 10 -- percent of port 0's link speed (speed=10000: 10% = 1.49 Mpps at 64 bytes)
local SECONDS = 10
local RESULTS = "/tmp/rvs-pktgen-established-udp.txt"
local TX = "0" -- port 1 only receives
-----------------------------------------------------------------------------------------------

-- The shared helpers (log, range, gcd, ip_add, ...) are in rvs-common.lua, next to this script.
local HERE = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./" -- this script's directory
local rvs = dofile(HERE .. "rvs-common.lua")
local log, range = rvs.log, rvs.range

assert(rvs.gcd(ADDRS, PORTS) == 1, "ADDRS and PORTS must have no common factor")
local FLOWS = ADDRS * PORTS
local SRC_IP_LAST, SRC_PORT_LAST = rvs.ip_add(SRC_IP_FIRST, ADDRS - 1), SRC_PORT_FIRST + PORTS - 1
rvs.open_log(RESULTS) -- log() writes each line to stdout and to RESULTS

pktgen.screen("off")
log("%s: UDP %s:%d, %d flows (%s-%s x ports %d-%d), %d-byte frames, %s%% for %d s",
    pktgen.info.Pktgen_Version or "pktgen", VIP, VIP_PORT, FLOWS, SRC_IP_FIRST, SRC_IP_LAST,
    SRC_PORT_FIRST, SRC_PORT_LAST, SIZE, tostring(RATE), SECONDS)

pktgen.set_proto(TX, "udp")
pktgen.range.ip_proto(TX, "udp")
range(pktgen.range.dst_mac, TX, DUT_MAC, DUT_MAC, DUT_MAC, "00:00:00:00:00:00")
range(pktgen.range.src_mac, TX, SRC_MAC, SRC_MAC, SRC_MAC, "00:00:00:00:00:00")
range(pktgen.range.dst_ip, TX, VIP, VIP, VIP, "0.0.0.0")
range(pktgen.range.src_ip, TX, SRC_IP_FIRST, SRC_IP_FIRST, SRC_IP_LAST, "0.0.0.1")
range(pktgen.range.dst_port, TX, VIP_PORT, VIP_PORT, VIP_PORT, 0)
range(pktgen.range.src_port, TX, SRC_PORT_FIRST, SRC_PORT_FIRST, SRC_PORT_LAST, 1)
range(pktgen.range.pkt_size, TX, SIZE, SIZE, SIZE, 0)
pktgen.set(TX, "rate", RATE)
pktgen.set(TX, "count", 0) -- 0: until stopped
pktgen.set_range(TX, "on")

pktgen.delay(1000) -- links settle (virtio-user <-> vhost)
pktgen.clr()
pktgen.start(TX)
rvs.log_rates(SECONDS) -- one line a second: port 0 tx pps, port 1 rx pps
pktgen.stop(TX)
pktgen.delay(1000) -- the last packets leave rvsd

-- Totals: one line per port, then the summary.
local st = rvs.totals()
local sent, got = st[0].opackets, st[1].ipackets
log("offered %d datagrams (%.0f pps) on %d flows; rvsd forwarded %d (%.1f%%)", sent,
    sent / SECONDS, FLOWS, got, sent > 0 and 100 * got / sent or 0)
rvs.check_frame_size(st, SIZE) -- warns unless about SIZE - 4 bytes a frame (DPDK: no FCS)
log("rvsd side: connections_created grows by %d on a fresh rvsd (UDP connections live 300 s);"
    .. " SIGUSR1 logs its counters, or read its stats_file (README.md)", FLOWS)
rvs.close_log()

pktgen.quit()
