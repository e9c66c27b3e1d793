package bscemu

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"cellagent/modem/clock"
	"cellagent/transport/bsc/receiver"
)

// Data coding schemes as the forwarder reports them.
const (
	DCSGSM7 = 0
	DCS8Bit = 4
)

// MO is an SMS sent by a simulated modem, as the lead's modem simulator
// decoded it from the SMS-SUBMIT PDU.
type MO struct {
	Dest   string // destination address; the platform ignores it for routing
	Source string // originator; default the SIM's MSISDN
	Text   string // payload for DCS 0
	Data   []byte // payload for DCS 4; forwarded as upper-case hex
	DCS    int    // DCSGSM7 or DCS8Bit
	PID    int
	// Concatenation: PartNo/Total are 1-based; zero means a single part.
	PartNo, Total int
	Identifier    int // concatenation reference when Total > 0 (0 is valid); a single part gets the message id
	SubmitTime    time.Time
}

// ErrQueueFull means the forwarder's bounded queue is full; the caller may
// retry later, as a real SMSC would keep the message.
var ErrQueueFull = errors.New("bscemu: forwarder queue full")

type outbound struct {
	method string
	what   string
	body   []byte
}

type mtJob struct {
	iccid string
	id    int64
}

// The forwards are written with the receiver's types (transport/bsc/
// receiver), so the simulator and the application side cannot drift
// apart on a field; both follow the platform's forwarder examples field
// for field, including its GMT "2006-01-02 15:04:05" dates.
const forwarderTime = "2006-01-02 15:04:05"

// ForwardMO queues an MO SMS from the SIM for the application URL; it is
// re-sent with back-off until the application answers 2xx.
func (s *Server) ForwardMO(iccid string, mo MO) error {
	if s.cfg.AppURL == "" {
		return errors.New("bscemu: ForwardMO: no application URL configured")
	}
	if mo.DCS != DCSGSM7 && mo.DCS != DCS8Bit {
		return fmt.Errorf("bscemu: ForwardMO: dcs %d, want %d (GSM 7-bit) or %d (8-bit)", mo.DCS, DCSGSM7, DCS8Bit)
	}
	if mo.Total < 0 || mo.PartNo < 0 || mo.PartNo > mo.Total {
		return fmt.Errorf("bscemu: ForwardMO: part %d of %d is not a valid concatenation", mo.PartNo, mo.Total)
	}
	s.mu.Lock()
	st, ok := s.sims[iccid]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("bscemu: ForwardMO: no SIM %s", iccid)
	}
	id := s.nextID
	s.nextID++
	st.smsMO++
	st.smsRemaining = max(0, st.smsRemaining-1)
	msisdn, endpoint := st.cfg.MSISDN, st.cfg.EndpointID
	now := time.Now()
	s.mu.Unlock()

	m := receiver.MO{
		ID: id, DestAddress: mo.Dest, SourceAddress: mo.Source, DCS: mo.DCS, PID: mo.PID,
		Endpoint:      receiver.Endpoint{ID: endpoint, Name: iccid},
		Organisation:  &receiver.Organisation{ID: s.cfg.OrgID},
		MultiPartInfo: &receiver.MultiPart{PartNo: 1, Total: 1, Identifier: id},
		Payload:       mo.Text,
	}
	if m.SourceAddress == "" {
		m.SourceAddress = msisdn
	}
	if mo.DCS == DCS8Bit {
		m.Payload = hex.EncodeToString(mo.Data)
	}
	if mo.Total > 0 {
		// A concatenated message is identified by its UDH reference, and
		// 0 is as valid a reference as any other.
		m.MultiPartInfo.PartNo, m.MultiPartInfo.Total = mo.PartNo, mo.Total
		m.MultiPartInfo.Identifier = int64(mo.Identifier)
	}
	submit := mo.SubmitTime
	if submit.IsZero() {
		submit = now
	}
	m.SubmitDate = submit.UTC().Format(forwarderTime)
	return s.enqueue(outbound{method: http.MethodPost, what: "MO SMS", body: mustJSON(m)})
}

func mustJSON(v any) []byte {
	// Only our own plain structs are marshalled here; they cannot fail.
	b, _ := json.Marshal(v)
	return b
}

func (s *Server) enqueue(o outbound) error {
	select {
	case <-s.ctx.Done():
		return errors.New("bscemu: server closed")
	case s.outq <- o:
		return nil
	default:
		return ErrQueueFull
	}
}

// forwardLoop sends one message at a time, in order, so a down application
// holds the queue the way the platform's buffer does.
func (s *Server) forwardLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case o := <-s.outq:
			s.deliverOutbound(o)
		}
	}
}

func (s *Server) deliverOutbound(o outbound) {
	for attempt := 1; ; attempt++ {
		err := s.postApp(o)
		if err == nil {
			s.log.Info("bscemu: forwarded", "what", o.what, "attempt", attempt)
			return
		}
		delay := clock.Backoff(s.cfg.RetryBase, s.cfg.RetryMax, attempt)
		s.log.Warn("bscemu: forward failed, will retry", "what", o.what, "attempt", attempt, "retry_in", delay, "err", err)
		if clock.Sleep(s.ctx, delay) != nil {
			return
		}
	}
}

func (s *Server) postApp(o outbound) error {
	req, err := http.NewRequestWithContext(s.ctx, o.method, s.cfg.AppURL, bytes.NewReader(o.body))
	if err != nil {
		return fmt.Errorf("building request: %w", err)
	}
	for k, vs := range s.cfg.AppHeader {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.cfg.AppClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("application answered %s", resp.Status)
	}
	return nil
}

// queueMTLocked hands an MT SMS to the delivery worker; s.mu is held. A full
// queue leaves it buffered until the modem registers again.
func (s *Server) queueMTLocked(iccid string, id int64) {
	m := s.sims[iccid].findMT(id)
	select {
	case s.mtq <- mtJob{iccid: iccid, id: id}:
		m.status = smsPending
	default:
		m.status = smsBuffered
		s.log.Warn("bscemu: MT queue full, SMS stays buffered", "iccid", iccid, "id", id)
	}
}

// mtLoop delivers MT SMS into modems one at a time, outside the HTTP
// handler, like the platform: 201 means accepted, delivery comes later.
func (s *Server) mtLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case j := <-s.mtq:
			s.deliverMT(j)
		}
	}
}

func (s *Server) deliverMT(j mtJob) {
	s.mu.Lock()
	st := s.sims[j.iccid]
	m := st.findMT(j.id)
	dev := s.devices[j.iccid]
	if m == nil || m.status != smsPending {
		s.mu.Unlock()
		return
	}
	if dev == nil {
		m.status = smsBuffered
		s.mu.Unlock()
		return
	}
	from, text := m.source, m.payload
	s.mu.Unlock()

	err := dev.DeliverText(from, text)

	s.mu.Lock()
	if err != nil {
		// Stays buffered; a later Register retries, as the SMSC would.
		m.status = smsBuffered
		s.mu.Unlock()
		s.log.Warn("bscemu: MT delivery failed", "iccid", j.iccid, "id", j.id, "err", err)
		return
	}
	now := time.Now()
	m.status, m.final = smsDelivered, now
	st.smsMT++
	st.smsRemaining = max(0, st.smsRemaining-1)
	dlr := receiver.DLR{
		ID: m.id, FinalDate: now.UTC().Format(forwarderTime), SubmitDate: m.submitted.UTC().Format(forwarderTime),
		Organisation: &receiver.Organisation{ID: s.cfg.OrgID},
		Endpoint:     receiver.Endpoint{ID: st.cfg.EndpointID, Name: j.iccid},
		Status:       receiver.DLRStatus{ID: 4, Status: smsDelivered},
	}
	s.mu.Unlock()
	if s.cfg.AppURL == "" {
		return
	}
	if err := s.enqueue(outbound{method: http.MethodPatch, what: "delivery report", body: mustJSON(dlr)}); err != nil {
		s.log.Warn("bscemu: delivery report dropped", "id", m.id, "err", err)
	}
}
