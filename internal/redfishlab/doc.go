// Package redfishlab is a small Redfish service for the lab and the tests:
// no Redfish emulator can be installed here (sushy-tools and DMTF's
// Redfish-Interface-Emulator come from PyPI), so this one follows DMTF's
// published mockups and schema (DSP0266, DSP0268; the "public-rackmount1"
// mockup's shapes) for the part a power driver meets:
//
//   - the service root /redfish/v1/ (readable without credentials), with
//     Systems, SessionService and Links.Sessions;
//   - sessions: POST /redfish/v1/SessionService/Sessions with UserName and
//     Password answers 201 with X-Auth-Token and Location; DELETE of that
//     Location ends it; every other resource needs the token or HTTP Basic;
//   - the Systems collection and one ComputerSystem with PowerState, Boot
//     (BootSourceOverrideTarget, -Enabled and -Mode, with
//     @Redfish.AllowableValues) and the #ComputerSystem.Reset action with
//     ResetType@Redfish.AllowableValues;
//   - PATCH of Boot with ETag/If-Match: 412 when If-Match names another
//     version, 428 when RequireIfMatch is set and it is missing; values
//     outside the allowable lists are 400 with a Base registry message.
//
// A Machine does the power work: in the lab, QEMU through its QMP socket.
// A boot override set to Once is consumed by the next power-on, which the
// service records (Boots), as firmware would.
package redfishlab
