package client

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// ---------------------------------------------------------------------------
// Triggers

// TriggerPut is the body of PUT .../triggers/NAME as wsk sends it: the name,
// and annotations and parameters only when given.
type TriggerPut struct {
	Name        string       `json:"name"`
	Annotations whisk.Params `json:"annotations,omitempty"`
	Parameters  whisk.Params `json:"parameters,omitempty"`
}

// PutTrigger creates (overwrite=false) or updates a trigger.
func (c *Client) PutTrigger(ctx context.Context, name string, t *TriggerPut, overwrite bool) (*whisk.Trigger, error) {
	resp, err := c.Do(ctx, Request{
		Method: http.MethodPut, Path: c.collectionPath("triggers", name),
		Query: "overwrite=" + strconv.FormatBool(overwrite), Body: t,
	})
	if err != nil {
		return nil, err
	}
	out := new(whisk.Trigger)
	if decode(resp, out) != nil {
		return nil, nil
	}
	return out, nil
}

// GetTrigger returns a trigger.
func (c *Client) GetTrigger(ctx context.Context, name string) (*whisk.Trigger, error) {
	out := new(whisk.Trigger)
	if err := c.get(ctx, c.collectionPath("triggers", name), "", out); err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteTrigger deletes a trigger and returns it as it was.
func (c *Client) DeleteTrigger(ctx context.Context, name string) (*whisk.Trigger, error) {
	resp, err := c.Do(ctx, Request{Method: http.MethodDelete, Path: c.collectionPath("triggers", name)})
	if err != nil {
		return nil, err
	}
	out := new(whisk.Trigger)
	_ = decode(resp, out)
	return out, nil
}

// ListTriggers lists the triggers of the client's namespace, or of ns.
func (c *Client) ListTriggers(ctx context.Context, ns string, opt ListOptions) ([]whisk.Trigger, error) {
	if ns == "" {
		ns = c.namespace
	}
	var out []whisk.Trigger
	if err := c.get(ctx, nsPath(ns)+"/triggers", opt.query(), &out); err != nil {
		return nil, err
	}
	return out, nil
}

// FireTrigger fires a trigger with params (a JSON object; nil sends {}).
// It returns the trigger activation's id, "" when no rule is active (204).
func (c *Client) FireTrigger(ctx context.Context, name string, params json.RawMessage) (string, error) {
	if len(params) == 0 {
		params = json.RawMessage("{}")
	}
	resp, err := c.Do(ctx, Request{Method: http.MethodPost, Path: c.collectionPath("triggers", name), Body: params})
	if err != nil {
		return "", err
	}
	var b struct {
		ActivationID string `json:"activationId"`
	}
	_ = decode(resp, &b)
	return b.ActivationID, nil
}

// ---------------------------------------------------------------------------
// Rules

// RulePut is the body of PUT .../rules/NAME as wsk sends it (status empty,
// trigger and action as "/ns/name" paths).
type RulePut struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Trigger string `json:"trigger"`
	Action  string `json:"action"`
}

// PutRule creates (overwrite=false) or updates a rule.
func (c *Client) PutRule(ctx context.Context, name string, r *RulePut, overwrite bool) (*whisk.Rule, error) {
	resp, err := c.Do(ctx, Request{
		Method: http.MethodPut, Path: c.collectionPath("rules", name),
		Query: "overwrite=" + strconv.FormatBool(overwrite), Body: r,
	})
	if err != nil {
		return nil, err
	}
	out := new(whisk.Rule)
	if decode(resp, out) != nil {
		return nil, nil
	}
	return out, nil
}

// SetRuleStatus enables ("active") or disables ("inactive") a rule, with
// the body wsk sends.
func (c *Client) SetRuleStatus(ctx context.Context, name, status string) error {
	body := struct {
		Status  string  `json:"status"`
		Trigger *string `json:"trigger"`
		Action  *string `json:"action"`
	}{Status: status}
	_, err := c.Do(ctx, Request{Method: http.MethodPost, Path: c.collectionPath("rules", name), Body: body})
	return err
}

// GetRule returns a rule with its status.
func (c *Client) GetRule(ctx context.Context, name string) (*whisk.Rule, error) {
	out := new(whisk.Rule)
	if err := c.get(ctx, c.collectionPath("rules", name), "", out); err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteRule deletes a rule.
func (c *Client) DeleteRule(ctx context.Context, name string) error {
	_, err := c.Do(ctx, Request{Method: http.MethodDelete, Path: c.collectionPath("rules", name)})
	return err
}

// ListRules lists the rules of the client's namespace, or of ns.
func (c *Client) ListRules(ctx context.Context, ns string, opt ListOptions) ([]whisk.Rule, error) {
	if ns == "" {
		ns = c.namespace
	}
	var out []whisk.Rule
	if err := c.get(ctx, nsPath(ns)+"/rules", opt.query(), &out); err != nil {
		return nil, err
	}
	return out, nil
}
