package api

import (
	"net/http"

	"github.com/eddy-faas/eddy/internal/events"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// ruleView is a rule as the API shows it: annotations never null.
func ruleView(r whisk.Rule) whisk.Rule {
	if r.Annotations == nil {
		r.Annotations = whisk.Params{}
	}
	return r
}

// listRules is GET .../rules?limit&skip&count: full rules without status.
func (s *server) listRules(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	skip, limit, count, err := listQuery(r, "rules")
	if err != nil {
		return err
	}
	if count {
		n, err := s.events.CountRules(r.Context(), caller.Namespace)
		if err != nil {
			return err
		}
		writeCount(w, "rules", n)
		return nil
	}
	rs, err := s.events.ListRules(r.Context(), caller.Namespace, skip, limit)
	if err != nil {
		return err
	}
	for i := range rs {
		rs[i] = ruleView(rs[i])
		rs[i].Status = ""
	}
	writeJSON(w, http.StatusOK, rs)
	return nil
}

// getRule is GET .../rules/{name}: the rule with its status from the
// trigger; the trailing-slash form lists.
func (s *server) getRule(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	return getNamed(w, r, caller, s.listRules, s.events.GetRule, ruleView)
}

// putRule is PUT .../rules/{name}?overwrite=B.
func (s *server) putRule(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	name, err := entityName(r)
	if err != nil {
		return err
	}
	put, overwrite, err := readPut[events.RulePut](w, r, putSlack, true)
	if err != nil {
		return err
	}
	rule, err := s.events.PutRule(r.Context(), caller, name, put, overwrite)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ruleView(rule))
	return nil
}

// setRuleStatus is POST .../rules/{name} {"status":"active"|"inactive"}:
// 200 with the non-JSON body OK, as OpenWhisk answers.
func (s *server) setRuleStatus(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	name, err := entityName(r)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, putSlack)
	if err != nil {
		return err
	}
	var req struct {
		Status *string `json:"status"`
	}
	if err := decodeJSON(body, &req); err != nil {
		return err
	}
	if req.Status == nil {
		return whisk.E("api.setRuleStatus", whisk.Invalid, whisk.MsgMalformed+"Object is missing required member 'status'", nil)
	}
	if err := s.events.SetRuleStatus(r.Context(), caller.Namespace, name, *req.Status); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("OK"))
	return nil
}

// deleteRule is DELETE .../rules/{name}: allowed in any state; 200 with
// the rule, status inactive.
func (s *server) deleteRule(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	return onNamed(w, r, caller, s.events.DeleteRule, ruleView)
}
