package bscemu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const prefix = "/management-api"

func (s *Server) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("POST "+prefix+"/oauth/token", s.handleToken)
	api := func(pattern string, h func(http.ResponseWriter, *http.Request, *simState)) {
		method, path, _ := strings.Cut(pattern, " ")
		m.Handle(method+" "+prefix+"/v1"+path, s.guard(h))
	}
	m.Handle("GET "+prefix+"/v1/sims", s.guard(func(w http.ResponseWriter, r *http.Request, _ *simState) { s.listSIMs(w, r) }))
	m.Handle("POST "+prefix+"/v1/sims/topup", s.guard(func(w http.ResponseWriter, r *http.Request, _ *simState) { s.bulkTopup(w, r) }))
	api("GET /sims/{iccid}", s.getSIM)
	api("PUT /sims/{iccid}", s.putSIM)
	api("GET /sims/{iccid}/connectivity_info", s.connectivity)
	api("GET /sims/{iccid}/events", s.events)
	api("GET /sims/{iccid}/quota/data", s.dataQuota)
	api("GET /sims/{iccid}/quota/sms", s.smsQuota)
	api("POST /sims/{iccid}/reset", s.reset)
	api("GET /sims/{iccid}/sms", s.listSMS)
	api("POST /sims/{iccid}/sms", s.sendSMS)
	api("GET /sims/{iccid}/sms/{id}", s.getSMS)
	api("DELETE /sims/{iccid}/sms/{id}", s.deleteSMS)
	api("POST /sims/{iccid}/topup", s.topup)
	api("GET /sims/{iccid}/usage", s.usage)
	if s.cfg.Control {
		s.controlRoutes(m)
	}
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "NotFound", "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return m
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding answer: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"statusCode": status, "errorCode": code, "message": msg})
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.nTokens++
	s.mu.Unlock()
	user, pass, ok := r.BasicAuth()
	if !ok {
		writeError(w, http.StatusUnauthorized, "Auth Error", "Auth Error: Basic authorization required")
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		writeError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be client_credentials")
		return
	}
	want, known := s.cfg.Users[user]
	if !known || want != pass {
		writeError(w, http.StatusUnauthorized, "Auth Error", "Auth Error: invalid username or password")
		return
	}
	tok := newUUID()
	s.mu.Lock()
	life := s.cfg.TokenLifetime
	s.tokens[tok] = time.Now().Add(life)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"token_type":   "bearer",
		"expires_in":   int64(life / time.Second),
		"scope":        "all",
		"orgId":        s.cfg.OrgID,
	})
}

// guard applies, in the order a real API gateway would: injected faults,
// the bearer token check, then the ICCID lookup.
func (s *Server) guard(h func(http.ResponseWriter, *http.Request, *simState)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.nAPI++
		f := s.takeFaultLocked()
		s.mu.Unlock()
		if f != nil && s.applyFault(w, r, f) {
			return
		}
		if !s.authorized(r) {
			writeError(w, http.StatusUnauthorized, "Unauthorized", "missing, unknown or expired bearer token")
			return
		}
		var st *simState
		if iccid := r.PathValue("iccid"); iccid != "" {
			s.mu.Lock()
			st = s.sims[iccid]
			s.mu.Unlock()
			if st == nil {
				writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("SIM %s not found", iccid))
				return
			}
		}
		h(w, r, st)
	})
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[tok]
	return ok && time.Now().Before(exp)
}

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func simJSON(st *simState) map[string]any {
	return map[string]any{
		"iccid":           st.cfg.ICCID,
		"imsi":            st.cfg.IMSI,
		"msisdn":          st.cfg.MSISDN,
		"status":          st.status,
		"label":           st.label,
		"ip_address":      fmt.Sprintf("10.%d.%d.%d", st.cfg.EndpointID>>16&0xff, st.cfg.EndpointID>>8&0xff, st.cfg.EndpointID&0xff),
		"activation_date": ts(st.periodStart),
	}
}

func (s *Server) listSIMs(w http.ResponseWriter, r *http.Request) {
	page, perPage := 1, 100
	for name, dst := range map[string]*int{"page": &page, "per_page": &perPage} {
		if v := r.URL.Query().Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				writeError(w, http.StatusBadRequest, "BadRequest", name+" must be an integer 1..1000")
				return
			}
			*dst = n
		}
	}
	s.mu.Lock()
	out := []map[string]any{}
	for i := (page - 1) * perPage; i < len(s.order) && i < page*perPage; i++ {
		out = append(out, simJSON(s.sims[s.order[i]]))
	}
	total := len(s.order)
	s.mu.Unlock()
	w.Header().Set("X-Total-Count", strconv.Itoa(total))
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getSIM(w http.ResponseWriter, _ *http.Request, st *simState) {
	s.mu.Lock()
	v := simJSON(st)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) putSIM(w http.ResponseWriter, r *http.Request, st *simState) {
	var body struct {
		Label  *string `json:"label"`
		Status *string `json:"status"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Status != nil && *body.Status != "ENABLED" && *body.Status != "DISABLED" {
		writeError(w, http.StatusBadRequest, "BadRequest", "status must be ENABLED or DISABLED")
		return
	}
	s.mu.Lock()
	if body.Label != nil {
		st.label = *body.Label
	}
	if body.Status != nil && *body.Status != st.status {
		st.status = *body.Status
		st.event(time.Now(), "STATUS_CHANGED", "SIM "+st.status)
	}
	v := simJSON(st)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, v)
}

// decodeBody answers 400 itself when the body is not the expected JSON.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "reading body: "+err.Error())
		return false
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return true
	}
	if err := json.Unmarshal(b, v); err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "malformed JSON body: "+err.Error())
		return false
	}
	return true
}

func (s *Server) connectivity(w http.ResponseWriter, _ *http.Request, st *simState) {
	s.mu.Lock()
	status := "OFFLINE"
	if _, ok := s.devices[st.cfg.ICCID]; ok {
		status = "ONLINE"
	}
	if st.resetting {
		status = "RESETTING"
	}
	v := map[string]any{
		"iccid": st.cfg.ICCID, "status": status, "rat": "LTE-M", "operator": "Simulated Operator",
		"mcc": "901", "mnc": "40", "ip_address": simJSON(st)["ip_address"], "last_seen": ts(time.Now()),
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) events(w http.ResponseWriter, _ *http.Request, st *simState) {
	s.mu.Lock()
	out := make([]map[string]any, 0, len(st.events))
	for _, e := range st.events {
		out = append(out, map[string]any{"id": e.ID, "timestamp": ts(e.Time), "type": e.Type, "description": e.Description})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"events": out})
}

func quotaJSON(status string, total, remaining int64, unit string, expiry time.Time, thresholds bool) map[string]any {
	v := map[string]any{"status": status, "total": total, "remaining": remaining, "unit": unit, "expiry_date": ts(expiry)}
	if thresholds {
		v["thresholds"] = map[string]any{"notify": thresholdNotify, "throttle": thresholdThrottle, "hard_limit": thresholdHard}
	}
	return v
}

func (s *Server) dataQuota(w http.ResponseWriter, _ *http.Request, st *simState) {
	s.mu.Lock()
	v := quotaJSON(st.dataStatus(time.Now()), st.dataTotal, st.dataRemaining, "bytes", st.expiry, true)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) smsQuota(w http.ResponseWriter, _ *http.Request, st *simState) {
	s.mu.Lock()
	v := quotaJSON(st.smsStatus(time.Now()), st.smsTotal, st.smsRemaining, "sms", st.expiry, false)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) usage(w http.ResponseWriter, _ *http.Request, st *simState) {
	s.mu.Lock()
	v := map[string]any{
		"period_start": ts(st.periodStart),
		"period_end":   ts(time.Now()),
		"data":         map[string]any{"total_bytes": st.usedBytes},
		"sms":          map[string]any{"mo": st.smsMO, "mt": st.smsMT},
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, v)
}

// reset queues a network-side reset: 202 now, the modem's NetworkReset
// after ResetDelay.
func (s *Server) reset(w http.ResponseWriter, _ *http.Request, st *simState) {
	s.mu.Lock()
	if s.closed {
		// Close is waiting for reset goroutines; starting one now would race it.
		s.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "Unavailable", "simulator shutting down")
		return
	}
	now := time.Now()
	st.resetCount++
	st.resetting = true
	st.event(now, "RESET_QUEUED", "connectivity reset queued")
	id := s.nextID
	s.nextID++
	s.wg.Add(1)
	s.mu.Unlock()
	go s.runReset(st)
	writeJSON(w, http.StatusAccepted, map[string]any{"id": id, "status": "QUEUED", "requested_at": ts(now)})
}

func (s *Server) runReset(st *simState) {
	defer s.wg.Done()
	t := time.NewTimer(s.cfg.ResetDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.ctx.Done():
		return
	}
	s.mu.Lock()
	st.resetting = false
	st.event(time.Now(), "RESET_DONE", "connectivity reset executed")
	dev := s.devices[st.cfg.ICCID]
	s.mu.Unlock()
	if dev != nil {
		dev.NetworkReset()
	}
}

func mtJSON(m *mtState) map[string]any {
	return map[string]any{
		"id": m.id, "payload": m.payload, "source_address": m.source, "status": m.status,
		"submit_date": ts(m.submitted), "final_date": ts(m.final),
	}
}

func (s *Server) listSMS(w http.ResponseWriter, _ *http.Request, st *simState) {
	s.mu.Lock()
	out := make([]map[string]any, 0, len(st.mt))
	for _, m := range st.mt {
		out = append(out, mtJSON(m))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) sendSMS(w http.ResponseWriter, r *http.Request, st *simState) {
	var body struct {
		Payload       string `json:"payload"`
		SourceAddress string `json:"source_address"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Payload == "" {
		writeError(w, http.StatusBadRequest, "BadRequest", "payload is required")
		return
	}
	s.mu.Lock()
	m := &mtState{id: s.nextID, payload: body.Payload, source: body.SourceAddress, status: smsBuffered, submitted: time.Now()}
	s.nextID++
	st.mt = append(st.mt, m)
	if _, ok := s.devices[st.cfg.ICCID]; ok {
		s.queueMTLocked(st.cfg.ICCID, m.id)
	}
	v := mtJSON(m)
	s.mu.Unlock()
	w.Header().Set("Location", fmt.Sprintf("%s/v1/sims/%s/sms/%d", prefix, st.cfg.ICCID, m.id))
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) findSMS(w http.ResponseWriter, r *http.Request, st *simState) *mtState {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "SMS id must be an integer")
		return nil
	}
	m := st.findMT(id)
	if m == nil {
		writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("SMS %d not found", id))
	}
	return m
}

func (s *Server) getSMS(w http.ResponseWriter, r *http.Request, st *simState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.findSMS(w, r, st); m != nil {
		writeJSON(w, http.StatusOK, mtJSON(m))
	}
}

func (s *Server) deleteSMS(w http.ResponseWriter, r *http.Request, st *simState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.findSMS(w, r, st)
	if m == nil {
		return
	}
	for i, x := range st.mt {
		if x == m {
			st.mt = append(st.mt[:i], st.mt[i+1:]...)
			break
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

type topupBody struct {
	DataBytes int64 `json:"data_bytes"`
	SMS       int64 `json:"sms"`
}

// topup adds the given amounts, or by default the SIM's original package.
func (s *Server) topup(w http.ResponseWriter, r *http.Request, st *simState) {
	var body topupBody
	if !decodeBody(w, r, &body) {
		return
	}
	if body.DataBytes < 0 || body.SMS < 0 {
		writeError(w, http.StatusBadRequest, "BadRequest", "data_bytes and sms must not be negative")
		return
	}
	s.mu.Lock()
	s.applyTopupLocked(st, body)
	v := quotaJSON(st.dataStatus(time.Now()), st.dataTotal, st.dataRemaining, "bytes", st.expiry, true)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) applyTopupLocked(st *simState, b topupBody) {
	if b.DataBytes == 0 && b.SMS == 0 {
		b.DataBytes, b.SMS = st.cfg.DataBytes, st.cfg.SMS
	}
	st.topup(b.DataBytes, b.SMS, time.Now())
}

// bulkTopup takes a JSON array of ICCIDs or {"iccids": [...]}; an unknown
// ICCID fails the whole request before any SIM changes.
func (s *Server) bulkTopup(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "reading body: "+err.Error())
		return
	}
	var iccids []string
	if err := json.Unmarshal(raw, &iccids); err != nil {
		var obj struct {
			ICCIDs []string `json:"iccids"`
		}
		if err2 := json.Unmarshal(raw, &obj); err2 != nil || len(obj.ICCIDs) == 0 {
			writeError(w, http.StatusBadRequest, "BadRequest", `body must be a JSON array of ICCIDs or {"iccids": [...]}`)
			return
		}
		iccids = obj.ICCIDs
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range iccids {
		if s.sims[id] == nil {
			writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("SIM %s not found", id))
			return
		}
	}
	for _, id := range iccids {
		s.applyTopupLocked(s.sims[id], topupBody{})
	}
	writeJSON(w, http.StatusOK, map[string]any{"topped_up": iccids})
}
