package redfishlab

import (
	"encoding/json"
	"net/http"
	"slices"
)

// patchSystem applies a PATCH of Boot, the one writable property here.
func (s *Service) patchSystem(w http.ResponseWriter, r *http.Request) {
	var body map[string]json.RawMessage
	if err := decode(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, "MalformedJSON", "The request body cannot be parsed: "+err.Error())
		return
	}
	for k := range body {
		if k != "Boot" {
			writeError(w, http.StatusBadRequest, "PropertyNotWritable", "The property "+k+" is not writable.", k)
			return
		}
	}
	var boot map[string]string
	if raw, ok := body["Boot"]; !ok || json.Unmarshal(raw, &boot) != nil {
		writeError(w, http.StatusBadRequest, "PropertyValueTypeError", "Boot must be an object of strings.", "Boot")
		return
	}
	allowed := map[string][]string{"BootSourceOverrideTarget": BootTargets, "BootSourceOverrideEnabled": BootEnabled,
		"BootSourceOverrideMode": BootModes}
	for k, v := range boot {
		vals, ok := allowed[k]
		if !ok {
			writeError(w, http.StatusBadRequest, "PropertyUnknown", "The property Boot/"+k+" is not known or not writable.", "Boot/"+k)
			return
		}
		if !slices.Contains(vals, v) {
			writeError(w, http.StatusBadRequest, "PropertyValueNotInList",
				"The value "+v+" for the property Boot/"+k+" is not in the list of acceptable values.", v, "Boot/"+k)
			return
		}
	}
	im := r.Header.Get("If-Match")
	s.mu.Lock()
	s.ifMatch = append(s.ifMatch, im)
	switch {
	case im == "" && s.cfg.RequireIfMatch:
		s.mu.Unlock()
		writeError(w, http.StatusPreconditionRequired, "PreconditionRequired", "An If-Match header with the ETag is required.")
		return
	case im != "" && !matches(im, s.etag()):
		etag := s.etag()
		s.mu.Unlock()
		w.Header().Set("ETag", etag)
		writeError(w, http.StatusPreconditionFailed, "PreconditionFailed",
			"The ETag supplied did not match the ETag required to change this resource.")
		return
	}
	if v, ok := boot["BootSourceOverrideTarget"]; ok {
		s.boot.Target = v
	}
	if v, ok := boot["BootSourceOverrideEnabled"]; ok {
		s.boot.Enabled = v
	}
	if v, ok := boot["BootSourceOverrideMode"]; ok {
		s.boot.Mode = v
	}
	s.version++
	s.mu.Unlock()
	s.system(w, r)
}

// reset runs #ComputerSystem.Reset. A reset that starts the machine
// (On, ForceRestart, PowerCycle) consumes a Once boot override.
func (s *Service) reset(w http.ResponseWriter, r *http.Request) {
	var body map[string]json.RawMessage
	if err := decode(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, "MalformedJSON", "The request body cannot be parsed: "+err.Error())
		return
	}
	var typ string
	if raw, ok := body["ResetType"]; !ok {
		writeError(w, http.StatusBadRequest, "ActionParameterMissing",
			"The action ComputerSystem.Reset requires the parameter ResetType to be present in the request body.",
			"ComputerSystem.Reset", "ResetType")
		return
	} else if json.Unmarshal(raw, &typ) != nil || !slices.Contains(ResetTypes, typ) {
		writeError(w, http.StatusBadRequest, "ActionParameterValueNotInList",
			"The value "+string(raw)+" for the parameter ResetType in the action ComputerSystem.Reset is not in the list of acceptable values.",
			string(raw), "ResetType", "ComputerSystem.Reset")
		return
	}
	for k := range body {
		if k != "ResetType" {
			writeError(w, http.StatusBadRequest, "ActionParameterNotSupported",
				"The parameter "+k+" for the action ComputerSystem.Reset is not supported on the target resource.", k, "ComputerSystem.Reset")
			return
		}
	}
	if err := s.cfg.Machine.Reset(r.Context(), typ); err != nil {
		writeError(w, http.StatusInternalServerError, "InternalError", "The reset failed: "+err.Error())
		return
	}
	if typ == "On" || typ == "ForceRestart" || typ == "PowerCycle" {
		s.mu.Lock()
		s.boots = append(s.boots, s.boot)
		if s.boot.Enabled == "Once" {
			s.boot.Enabled = "Disabled" // the target stays, as DSP2046 says of Once
			s.version++
		}
		s.mu.Unlock()
	}
	w.WriteHeader(http.StatusNoContent)
}
