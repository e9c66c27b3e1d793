package bscemu

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// FaultKind selects what an injected fault does to an API answer.
type FaultKind int

const (
	// FaultThrottle answers 429 with Fault.RetryAfter as the Retry-After header.
	FaultThrottle FaultKind = iota + 1
	// FaultServerError answers Fault.Status (default 500).
	FaultServerError
	// FaultSlow waits Fault.Delay, then answers normally.
	FaultSlow
	// FaultMalformed answers 200 with truncated JSON.
	FaultMalformed
)

// Fault applies to the next Count management API answers (not the token
// endpoint). Faults queue: the first one is used up before the next starts.
type Fault struct {
	Kind       FaultKind
	Count      int
	RetryAfter string        // header value: seconds or an HTTP-date; may be empty
	Status     int           // for FaultServerError
	Delay      time.Duration // for FaultSlow
}

// InjectFault queues f. A Count below 1 means 1.
func (s *Server) InjectFault(f Fault) {
	if f.Count < 1 {
		f.Count = 1
	}
	s.mu.Lock()
	s.faults = append(s.faults, &f)
	s.mu.Unlock()
}

// ClearFaults drops all queued faults.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

func (s *Server) takeFaultLocked() *Fault {
	if len(s.faults) == 0 {
		return nil
	}
	f := s.faults[0]
	f.Count--
	if f.Count <= 0 {
		s.faults = s.faults[1:]
	}
	return f
}

// applyFault reports whether it answered the request.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, f *Fault) bool {
	switch f.Kind {
	case FaultThrottle:
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		writeError(w, http.StatusTooManyRequests, "TooManyRequests", "rate limit exceeded")
		return true
	case FaultServerError:
		st := f.Status
		if st < 500 || st > 599 {
			st = http.StatusInternalServerError
		}
		writeError(w, st, "InternalError", "simulated platform failure")
		return true
	case FaultSlow:
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return true
		}
		return false
	case FaultMalformed:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"iccid": "8988228066`))
		return true
	}
	return false
}

var faultKinds = map[string]FaultKind{
	"throttle": FaultThrottle, "error": FaultServerError, "slow": FaultSlow, "malformed": FaultMalformed,
}

// controlRoutes exposes fault injection and state over HTTP for bench
// scripts: POST /_sim/faults?kind=throttle|error|slow|malformed&count=N
// [&retry_after=S][&status=503][&delay=2s], POST /_sim/tokens/revoke,
// POST /_sim/tokens/expire?after=1s, POST /_sim/sims/{iccid}/usage?bytes=N,
// GET /_sim/sims/{iccid}.
func (s *Server) controlRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		kind, ok := faultKinds[q.Get("kind")]
		if !ok {
			writeError(w, http.StatusBadRequest, "BadRequest", "kind must be throttle, error, slow or malformed")
			return
		}
		f := Fault{Kind: kind, RetryAfter: q.Get("retry_after")}
		var err error
		if v := q.Get("count"); v != "" {
			if f.Count, err = strconv.Atoi(v); err != nil {
				writeError(w, http.StatusBadRequest, "BadRequest", "count: "+err.Error())
				return
			}
		}
		if v := q.Get("status"); v != "" {
			if f.Status, err = strconv.Atoi(v); err != nil {
				writeError(w, http.StatusBadRequest, "BadRequest", "status: "+err.Error())
				return
			}
		}
		if v := q.Get("delay"); v != "" {
			if f.Delay, err = time.ParseDuration(v); err != nil {
				writeError(w, http.StatusBadRequest, "BadRequest", "delay: "+err.Error())
				return
			}
		}
		s.InjectFault(f)
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("POST /_sim/tokens/revoke", func(w http.ResponseWriter, _ *http.Request) {
		s.RevokeTokens()
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("POST /_sim/tokens/expire", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("after"))
		if err != nil {
			writeError(w, http.StatusBadRequest, "BadRequest", "after: "+err.Error())
			return
		}
		s.ExpireTokensAfter(d)
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("POST /_sim/sims/{iccid}/usage", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("bytes"), 10, 64)
		if err == nil {
			err = s.UseData(r.PathValue("iccid"), n)
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, "BadRequest", err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("GET /_sim/sims/{iccid}", func(w http.ResponseWriter, r *http.Request) {
		st, ok := s.SIM(r.PathValue("iccid"))
		if !ok {
			writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("SIM %s not found", r.PathValue("iccid")))
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
}
