#!/usr/bin/python3
"""A ModemManager stand-in for tests/agent/modem.rs, on python3-dbusmock's generic API
(DBusMockObject with the ObjectManager, AddObject, AddProperties, AddMethod, RemoveObject):
Debian 12's dbusmock 0.28 has no modemmanager template.

    mm_mock.py BUS_ADDRESS

owns org.freedesktop.ModemManager1 on the bus at BUS_ADDRESS and reads commands on stdin, one a
line, answering "ok" (or "error: ...") on stdout after each:

    add N PORT QUALITY OPERATOR RX TX   modem N (net port PORT, "-" for none) and its bearer N,
                                        with ModemManager's property types
    remove N                            modem N and its bearer N go away (InterfacesRemoved)
    deny                                Signal.Setup of modems added later is refused with
                                        ModemManager's Core.Unauthorized

Real ModemManager property types (API 1.x): Modem.SignalQuality (ub), AccessTechnologies u,
State i, Ports a(su), EquipmentIdentifier s, Bearers ao; Modem3gpp.RegistrationState u,
OperatorName s, OperatorCode s; Signal.Lte/Nr5g a{sv} of doubles, Rate u; Bearer.Stats a{sv}
(rx-bytes t, tx-bytes t, duration u), Connected b.
"""
import os
import sys

import dbus
import dbus.mainloop.glib
import dbus.service
import dbusmock
from gi.repository import GLib

MM = "org.freedesktop.ModemManager1"
ROOT = "/org/freedesktop/ModemManager1"
MODEM = MM + ".Modem"
G3PP = MODEM + ".Modem3gpp"
SIGNAL = MODEM + ".Signal"
BEARER = MM + ".Bearer"

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.bus.BusConnection(sys.argv[1])
name = dbus.service.BusName(MM, bus, do_not_queue=True)
# The call log goes to /dev/null: stdout carries only the answers to commands.
root = dbusmock.DBusMockObject(name, ROOT, MM, {}, logfile=os.devnull, is_object_manager=True)
deny = False


def add(n, port, quality, operator, rx, tx):
    path = f"{ROOT}/Modem/{n}"
    bearer = f"{ROOT}/Bearer/{n}"
    ports = [dbus.Struct((f"cdc-wdm{n}", dbus.UInt32(6)), signature="su")]
    if port != "-":
        ports.append(dbus.Struct((port, dbus.UInt32(2)), signature="su"))
    root.AddObject(bearer, BEARER, {
        "Connected": dbus.Boolean(True),
        "Interface": port if port != "-" else "",
        "Stats": dbus.Dictionary({
            "rx-bytes": dbus.UInt64(int(rx)),
            "tx-bytes": dbus.UInt64(int(tx)),
            "duration": dbus.UInt32(60),
        }, signature="sv"),
    }, [])
    root.AddObject(path, MODEM, {
        "SignalQuality": dbus.Struct((dbus.UInt32(int(quality)), dbus.Boolean(True)), signature="ub"),
        "AccessTechnologies": dbus.UInt32(0x4000 | 0x8000),  # LTE + 5G NR (NSA)
        "State": dbus.Int32(11),  # connected
        "Ports": dbus.Array(ports, signature="(su)"),
        "EquipmentIdentifier": f"35000000000000{n}",
        "Bearers": dbus.Array([dbus.ObjectPath(bearer)], signature="o"),
    }, [])
    obj = dbusmock.get_object(path)
    obj.AddProperties(G3PP, {
        "RegistrationState": dbus.UInt32(5),  # roaming
        "OperatorName": operator,
        "OperatorCode": "26201",
        "Imei": f"35000000000000{n}",
    })
    obj.AddProperties(SIGNAL, {
        "Rate": dbus.UInt32(0),
        "Lte": dbus.Dictionary({
            "rssi": dbus.Double(-61.0),
            "rsrp": dbus.Double(-95.5),
            "rsrq": dbus.Double(-11.0),
            "snr": dbus.Double(13.25),
        }, signature="sv"),
        "Nr5g": dbus.Dictionary({"rsrp": dbus.Double(-101.0)}, signature="sv"),
    })
    if deny:
        code = ("raise dbus.exceptions.DBusException('not authorized', "
                "name='org.freedesktop.ModemManager1.Error.Core.Unauthorized')")
    else:
        code = "self.Set('" + SIGNAL + "', 'Rate', dbus.UInt32(args[0]))"
    obj.AddMethod(SIGNAL, "Setup", "u", "", code)


def command(line):
    global deny
    words = line.split()
    if words[0] == "add":
        add(*words[1:])
    elif words[0] == "remove":
        root.RemoveObject(f"{ROOT}/Modem/{words[1]}")
        root.RemoveObject(f"{ROOT}/Bearer/{words[1]}")
    elif words[0] == "deny":
        deny = True
    else:
        raise ValueError(f"unknown command {words[0]}")


def on_stdin(source, _condition):
    line = source.readline()
    if not line:
        loop.quit()
        return False
    try:
        command(line)
        print("ok", flush=True)
    except Exception as e:  # the test prints it
        print(f"error: {e!r}", flush=True)
    return True


loop = GLib.MainLoop()
GLib.io_add_watch(sys.stdin, GLib.IO_IN | GLib.IO_HUP, on_stdin)
print("ready", flush=True)
loop.run()
