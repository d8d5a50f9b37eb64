"""systemd's view of units, asked once for many: shared by the service read and the restart module."""

from __future__ import annotations


def show_units(module, units: list[str], properties: list[str]) -> tuple[dict[str, dict[str, str]], str]:
    """`systemctl show` of every unit in one call: ({unit: {property: value}}, error).

    systemctl prints one blank-line separated block per unit, in the order asked. The error is
    systemctl's own message when it could not answer (a host without systemd); the mapping is then
    empty.
    """
    if not units:
        return {}, ""
    rc, out, err = module.run_command(["systemctl", "show", "-p", ",".join(properties), *units])
    if rc != 0:
        return {}, err.strip() or out.strip()
    blocks = out.strip().split("\n\n")
    if len(blocks) != len(units):
        return {}, f"systemctl show printed {len(blocks)} blocks for {len(units)} units"
    return {
        unit: dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        for unit, block in zip(units, blocks, strict=True)
    }, ""
