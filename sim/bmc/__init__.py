"""Emulated BMCs for the simulated machines, speaking the real protocols so that the real
ClusterLabs fence agents (`fence_ipmilan`, `fence_redfish`) can drive them.

- `power`: the narrow view of a machine's power a BMC gets (state, off, on, reset);
- `ipmi`: IPMI 2.0 over LAN (RMCP+), one UDP port per machine, built on pyghmi's BMC
  server as virtualbmc is;
- `redfish`: one HTTPS Redfish service for all machines (sushy-tools' emulator with a
  systems driver mapped onto the simulated machines), one System per machine;
- `fleet`: both, for a whole cluster, with per-machine reachability (an unplugged BMC
  network cable) and credentials.
"""
