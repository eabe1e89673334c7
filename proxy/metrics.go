package proxy

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the proxy's Prometheus metrics, on a private registry so that
// embedding mandate never pollutes (or is polluted by) the default one.
type Metrics struct {
	Registry *prometheus.Registry

	connsActive       prometheus.Gauge
	connsTotal        prometheus.Counter
	connsRejected     *prometheus.CounterVec // by reason
	authFailures      *prometheus.CounterVec // by method
	bytesFromClient   prometheus.Counter
	bytesToClient     prometheus.Counter
	statements        *prometheus.CounterVec // by protocol path
	errors            *prometheus.CounterVec // by SQLSTATE
	upstreamConnect   prometheus.Histogram
	upstreamFailures  prometheus.Counter
	upstreamReused    prometheus.Counter
	upstreamReleased  *prometheus.CounterVec // by result
	poolIdle          prometheus.Gauge
	poolDiscarded     prometheus.Counter
	stmtCacheHit      prometheus.Counter     // an unnamed Parse served by a cached statement
	stmtCachePrepared prometheus.Counter     // a rewritten statement prepared upstream for later Parses
	cancels           *prometheus.CounterVec // by outcome
	decisions         *prometheus.CounterVec // by decision
	decisionPolicies  *prometheus.CounterVec // by decision and policy id
	refusals          prometheus.Counter
	auditFailures     prometheus.Counter
	rewriteSeconds    prometheus.Histogram
	rewriteCache      [numCacheOutcomes]prometheus.Counter // by cacheOutcome
	revocation        prometheus.Histogram
	notifyLag         prometheus.Histogram
	policyReloads     *prometheus.CounterVec // by result

	// Children of statements, resolved once: the relay's hot path must not
	// hash label values per message.
	stmtSimple, stmtParse, stmtExecute, stmtFunctionCall prometheus.Counter
	stmtCopyIn, stmtCopyOut, stmtCopyBoth                prometheus.Counter
}

// NewMetrics registers the proxy's metrics (and the Go and process
// collectors) on a new private registry.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		connsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mandate_client_connections", Help: "Client connections currently open.",
		}),
		connsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mandate_client_connections_total", Help: "Client connections accepted.",
		}),
		connsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mandate_client_connections_rejected_total", Help: "Client connections refused, by reason.",
		}, []string{"reason"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mandate_auth_failures_total", Help: "Failed client authentications, by method.",
		}, []string{"method"}),
		bytesFromClient: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mandate_client_received_bytes_total", Help: "Bytes received from clients.",
		}),
		bytesToClient: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mandate_client_sent_bytes_total", Help: "Bytes sent to clients.",
		}),
		statements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mandate_statements_total", Help: "Statements received, by protocol path (simple, parse, execute, function_call, copy_in, copy_out, copy_both).",
		}, []string{"path"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mandate_errors_total", Help: "ErrorResponses sent to clients, by SQLSTATE.",
		}, []string{"sqlstate"}),
		upstreamConnect: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "mandate_upstream_connect_seconds", Help: "Time to open and authenticate an upstream connection.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		upstreamFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mandate_upstream_connect_failures_total", Help: "Upstream connection attempts that failed.",
		}),
		upstreamReused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mandate_upstream_reused_total", Help: "Sessions served by a pooled upstream connection instead of a new one.",
		}),
		upstreamReleased: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mandate_upstream_released_total", Help: "Upstream connections at the end of their session, by result: pooled, closed (not reusable or pool full), reset_failed (DISCARD ALL did not answer cleanly).",
		}, []string{"result"}),
		poolIdle: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mandate_upstream_pool_idle", Help: "Idle upstream connections kept for reuse.",
		}),
		poolDiscarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mandate_upstream_pool_discarded_total", Help: "Pooled upstream connections closed unused: expired, or found closed by the upstream.",
		}),
		cancels: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mandate_cancel_requests_total", Help: "CancelRequests received, by outcome (forwarded, unknown).",
		}, []string{"outcome"}),
	}
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mandate_decisions_total", Help: "Statement decisions, by outcome (allow, deny).",
	}, []string{"decision"})
	m.decisionPolicies = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mandate_decision_policies_total", Help: "Decisions by outcome and by the id (@id) of each policy that took part.",
	}, []string{"decision", "policy"})
	m.refusals = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mandate_refusals_total", Help: "Statements refused by mandate (denied, unsupported or unverifiable).",
	})
	m.auditFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mandate_audit_write_failures_total", Help: "Audit records that could not be written; after the first, every statement is refused until restart.",
	})
	m.rewriteSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "mandate_decision_seconds", Help: "Time to decide and rewrite one statement (grants and rewrite, cached or not).",
		Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10),
	})
	cache := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mandate_rewrite_cache_total", Help: "Statements decided, by how the rewrite cache served them: hit (same text), template (same text but its constants), miss (parsed and rewritten).",
	}, []string{"result"})
	for o := range m.rewriteCache {
		m.rewriteCache[o] = cache.WithLabelValues(cacheOutcome(o).String())
	}
	stmtCache := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mandate_statement_cache_total", Help: "Unnamed Parses of rewritten statements, by how the upstream statement cache served them: hit (a statement prepared earlier on the connection), prepared (prepared upstream for the next Parse).",
	}, []string{"result"})
	m.revocation = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "mandate_revocation_seconds", Help: "Time from a delegation's revocation commit to the first statement it refused.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	m.notifyLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "mandate_store_notify_lag_seconds", Help: "Time from a policy-store change in the database to its notification here.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	m.policyReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mandate_policy_reloads_total", Help: "Policy set reloads, by result (ok, rejected).",
	}, []string{"result"})
	r.MustRegister(m.decisions, m.decisionPolicies, m.refusals, m.auditFailures, m.rewriteSeconds, cache, m.revocation, m.notifyLag, m.policyReloads,
		m.connsActive, m.connsTotal, m.connsRejected, m.authFailures,
		m.bytesFromClient, m.bytesToClient, m.statements, m.errors,
		m.upstreamConnect, m.upstreamFailures, m.upstreamReused, m.upstreamReleased, m.poolIdle, m.poolDiscarded, m.cancels, stmtCache,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.stmtCacheHit, m.stmtCachePrepared = stmtCache.WithLabelValues("hit"), stmtCache.WithLabelValues("prepared")
	path := m.statements.WithLabelValues
	m.stmtSimple, m.stmtParse, m.stmtExecute, m.stmtFunctionCall = path("simple"), path("parse"), path("execute"), path("function_call")
	m.stmtCopyIn, m.stmtCopyOut, m.stmtCopyBoth = path("copy_in"), path("copy_out"), path("copy_both")
	return m
}

// ObserveNotifyLag records a policy-store notification's lag.
func (m *Metrics) ObserveNotifyLag(lag time.Duration) { m.notifyLag.Observe(lag.Seconds()) }

// PolicyReloaded counts a policy reload; a rejected one keeps the old set.
func (m *Metrics) PolicyReloaded(err error) {
	if err != nil {
		m.policyReloads.WithLabelValues("rejected").Inc()
		return
	}
	m.policyReloads.WithLabelValues("ok").Inc()
}
