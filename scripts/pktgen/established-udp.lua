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

local function gcd(a, b)
    while b ~= 0 do a, b = b, a % b end
    return a
end
assert(gcd(ADDRS, PORTS) == 1, "ADDRS and PORTS must have no common factor")
local FLOWS = ADDRS * PORTS

local function ip_add(ip, n)
    local a, b, c, d = ip:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    local x = ((tonumber(a) * 256 + tonumber(b)) * 256 + tonumber(c)) * 256 + tonumber(d) + n
    return string.format("%d.%d.%d.%d", x // 16777216 % 256, x // 65536 % 256, x // 256 % 256,
        x % 256)
end
local SRC_IP_LAST, SRC_PORT_LAST = ip_add(SRC_IP_FIRST, ADDRS - 1), SRC_PORT_FIRST + PORTS - 1

local out = assert(io.open(RESULTS, "w"))
local function log(fmt, ...)
    local line = string.format(fmt, ...)
    io.write(line, "\n")
    io.flush()
    out:write(line, "\n")
    out:flush()
end

-- start, min, max, inc of one range field.
local function range(set, port, start, min, max, inc)
    set(port, "start", start)
    set(port, "min", min)
    set(port, "max", max)
    set(port, "inc", inc)
end

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
for s = 1, SECONDS do
    pktgen.delay(1000)
    local r = pktgen.portStats("all", "rate")
    log("%3d s  port 0 tx %d pps  port 1 rx %d pps", s, r[0].pkts_tx, r[1].pkts_rx)
end
pktgen.stop(TX)
pktgen.delay(1000) -- the last packets leave rvsd

-- Totals. DPDK counts bytes without the FCS: 64-byte frames average 60.
local st = pktgen.portStats("all", "port")
local pk = pktgen.pktStats("all")
for pid = 0, 1 do
    local p, q = st[pid], pk[pid] or {}
    log("port %d: opackets %d obytes %d oerrors %d tx_failed %d | ipackets %d ibytes %d"
        .. " ierrors %d imissed %d rx_nombuf %d", pid, p.opackets, p.obytes, p.oerrors,
        q.tx_failed or 0, p.ipackets, p.ibytes, p.ierrors, p.imissed or 0, p.rx_nombuf or 0)
end
local sent, got = st[0].opackets, st[1].ipackets
log("offered %d datagrams (%.0f pps) on %d flows; rvsd forwarded %d (%.1f%%)", sent,
    sent / SECONDS, FLOWS, got, sent > 0 and 100 * got / sent or 0)
if sent > 0 and math.abs(st[0].obytes / sent - (SIZE - 4)) > 4 then
    log("WARNING: %.1f bytes per frame, not %d: the range packet size was not applied",
        st[0].obytes / sent, SIZE - 4)
end
log("rvsd side: connections_created grows by %d on a fresh rvsd (UDP connections live 300 s);"
    .. " SIGUSR1 logs its counters, or read its stats_file (README.md)", FLOWS)
out:close()

pktgen.quit()
