// Package receiver is the application side of the operator platform's SMS
// forwarder: an HTTP endpoint that takes MO SMS (POST) and delivery
// reports (PATCH), checks who is calling, decodes strictly, reassembles
// multi-part messages and commits each forward to disk before it answers
// 2xx, since the platform re-transmits whatever was not acknowledged.
package receiver

import (
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"sync/atomic"
	"time"
)

// MaxBody bounds a forward; the largest the platform can produce (../OPERATOR.md §4) (a 160
// character payload in JSON) is well under 2 KiB.
const MaxBody = 64 << 10

// Auth checks a request's credentials. The operator leaves the mechanism
// open (../OPERATOR.md §4); both a shared secret in a header and basic auth are offered.
type Auth struct {
	// Header names the header carrying Secret; used when User is empty.
	Header string
	// User, when set, selects basic auth with Secret as the password.
	User   string
	Secret string
}

func (a Auth) ok(r *http.Request) bool {
	if a.Secret == "" {
		return false
	}
	var got, want []byte
	if a.User != "" {
		u, p, ok := r.BasicAuth()
		if !ok {
			return false
		}
		got, want = []byte(u+"\x00"+p), []byte(a.User+"\x00"+a.Secret)
	} else {
		got, want = []byte(r.Header.Get(a.Header)), []byte(a.Secret)
	}
	return subtle.ConstantTimeCompare(got, want) == 1
}

// Handler serves the forwards.
type Handler struct {
	Store *Store
	Auth  Auth
	// Stored is called after a new record was committed (not for parts
	// or duplicates), outside any transaction.
	Stored func()
	Log    *slog.Logger

	refused atomic.Uint64
}

// Refused counts requests answered with 4xx.
func (h *Handler) Refused() uint64 { return h.refused.Load() }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := h.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	refuse := func(code int, why string) {
		h.refused.Add(1)
		log.Warn("receiver: forward refused", "method", r.Method, "remote", r.RemoteAddr, "status", code, "why", why)
		http.Error(w, why, code)
	}
	if r.Method != http.MethodPost && r.Method != http.MethodPatch {
		w.Header().Set("Allow", "POST, PATCH")
		refuse(http.StatusMethodNotAllowed, "POST (MO SMS) or PATCH (delivery report)")
		return
	}
	if !h.Auth.ok(r) {
		if h.Auth.User != "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="cellagent"`)
		}
		refuse(http.StatusUnauthorized, "authentication required")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			refuse(http.StatusUnsupportedMediaType, "want application/json")
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			refuse(http.StatusRequestEntityTooLarge, "body too large")
			return
		}
		refuse(http.StatusBadRequest, "reading the body failed")
		return
	}
	var out Outcome
	if r.Method == http.MethodPost {
		m, err := DecodeMO(body)
		if err != nil {
			refuse(http.StatusBadRequest, err.Error())
			return
		}
		out, err = h.Store.PutMO(m, time.Now())
		if err != nil {
			log.Error("receiver: not stored; the platform will retry", "err", err)
			http.Error(w, "not stored", http.StatusServiceUnavailable)
			return
		}
	} else {
		d, err := DecodeDLR(body)
		if err != nil {
			refuse(http.StatusBadRequest, err.Error())
			return
		}
		out, err = h.Store.PutDLR(d, time.Now())
		if err != nil {
			log.Error("receiver: not stored; the platform will retry", "err", err)
			http.Error(w, "not stored", http.StatusServiceUnavailable)
			return
		}
	}
	if out == Stored && h.Stored != nil {
		h.Stored()
	}
	w.WriteHeader(http.StatusNoContent)
}
