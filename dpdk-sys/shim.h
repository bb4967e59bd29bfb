/*
 * Linkable symbols for DPDK's static-inline fast path. bindgen cannot bind a static inline
 * function, so each one rvs calls gets a one-line wrapper here. Call them per burst where the
 * API allows, so the call overhead is paid once per burst, not per packet.
 */
#ifndef RVS_SHIM_H
#define RVS_SHIM_H
#include <stdint.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

uint16_t rvs_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **pkts, uint16_t n);
uint16_t rvs_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **pkts, uint16_t n);

struct rte_mbuf *rvs_pktmbuf_alloc(struct rte_mempool *mp);
int rvs_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int count);
void rvs_pktmbuf_free(struct rte_mbuf *m);
/* Data pointer of the first segment (rte_pktmbuf_mtod is a macro). */
void *rvs_pktmbuf_data(struct rte_mbuf *m);
/* Appends len bytes to the last segment; NULL when the tailroom is short. */
char *rvs_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
/* Removes len bytes from the end; -1 when the packet is shorter. */
int rvs_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);

unsigned int rvs_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned int n);
unsigned int rvs_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned int n);
unsigned int rvs_ring_count(const struct rte_ring *r);

/* rte_errno and rte_lcore_id() are per-thread variables: bindgen cannot reach them. */
int rvs_errno(void);
unsigned int rvs_lcore_id(void);

#endif
