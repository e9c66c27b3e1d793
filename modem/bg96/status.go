package bg96

import "context"

// Status is everything a "cellagent status" view or a telemetry message
// shows about the modem. Fields that could not be read are omitted and
// their errors listed in Errors under the part's name (imei, iccid, imsi,
// firmware, product, functionality, creg, cgreg, cereg, operator, network,
// csq, qcsq, attached).
type Status struct {
	Identity      Identity       `json:"identity"`
	Functionality *Functionality `json:"functionality,omitempty"`
	Registration  Registration   `json:"registration"`
	// Registered and RegState are the judgement of Registration.Overall;
	// RegState is omitted when no domain could be read.
	Registered bool              `json:"registered"`
	RegState   *RegStat          `json:"reg_state,omitempty"`
	RegDomain  Domain            `json:"reg_domain,omitempty"`
	Operator   *Operator         `json:"operator,omitempty"`
	Network    *NetInfo          `json:"network,omitempty"`
	Signal     Signal            `json:"signal"`
	Attached   *bool             `json:"attached,omitempty"`
	Errors     map[string]string `json:"errors,omitempty"`
}

// Status gathers identity, functionality, registration, operator, network
// info, signal and attach state. A failed query does not stop the others:
// a modem without a SIM still has an IMEI and a signal to show.
func (m *Modem) Status(ctx context.Context) Status {
	var st Status
	st.Identity = m.identity(ctx, st.record)
	m.state(ctx, &st)
	return st
}

// StatusWith is Status with an identity read before, for a poll that
// repeats on one session: the IMEI, SIM and firmware do not change under
// it, and their five queries would be a third of the poll's line time.
func (m *Modem) StatusWith(ctx context.Context, id Identity) Status {
	st := Status{Identity: id}
	m.state(ctx, &st)
	return st
}

func (st *Status) record(part string, err error) {
	if st.Errors == nil {
		st.Errors = make(map[string]string)
	}
	st.Errors[part] = err.Error()
}

// state reads everything but the identity into st.
func (m *Modem) state(ctx context.Context, st *Status) {
	rec := st.record
	if v, err := m.Functionality(ctx); err != nil {
		rec("functionality", err)
	} else {
		st.Functionality = &v
	}
	st.Registration = m.registration(ctx, rec)
	if stat, dom := st.Registration.Overall(); dom != "" {
		st.Registered, st.RegState, st.RegDomain = stat.Registered(), &stat, dom
	}
	if v, err := m.Operator(ctx); err != nil {
		rec("operator", err)
	} else {
		st.Operator = &v
	}
	if v, err := m.NetworkInfo(ctx); err != nil {
		rec("network", err)
	} else {
		st.Network = &v
	}
	st.Signal = m.signal(ctx, rec)
	if v, err := m.Attached(ctx); err != nil {
		rec("attached", err)
	} else {
		st.Attached = &v
	}
}
