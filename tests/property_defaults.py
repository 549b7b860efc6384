"""Checks every property of every element of this project (run with the system Python, which
has PyGObject): its documented default (what gst-inspect-1.0 shows) is the value a new element
has, and it has a nick and a blurb. Prints the problems; exit status 1 if there are any."""
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GObject, Gst  # noqa: E402

PLUGINS = ["rtinfer", "rtalert", "rtsrc", "rttrack", "rtoverlay", "rtrecord"]


def same(pspec, default, value):
    if isinstance(default, float):
        return abs(default - value) < 1e-9
    if pspec.value_type.is_a(GObject.TYPE_ENUM) or pspec.value_type.is_a(GObject.TYPE_FLAGS):
        return int(default) == int(value)
    # An unset string reads as None or "", whichever the element keeps.
    return default == value or (default in (None, "") and value in (None, ""))


def main():
    Gst.init(None)
    registry = Gst.Registry.get()
    problems, checked = [], 0
    for plugin in PLUGINS:
        factories = [f for f in registry.get_feature_list_by_plugin(plugin)
                     if isinstance(f, Gst.ElementFactory)]
        if not factories:
            problems.append(f"plugin {plugin} not found (GST_PLUGIN_PATH?)")
        for factory in factories:
            element = factory.create(None)
            for pspec in element.list_properties():
                if pspec.owner_type != type(element).__gtype__:
                    continue  # inherited: name, parent, qos...
                where = f"{factory.get_name()}.{pspec.name}"
                if not pspec.nick or not pspec.blurb or pspec.blurb == pspec.name:
                    problems.append(f"{where}: no nick or blurb")
                readable = pspec.flags & GObject.ParamFlags.READABLE
                writable = pspec.flags & GObject.ParamFlags.WRITABLE
                if not (readable and writable):
                    continue  # read-only figures (stats, state) have no default to keep
                checked += 1
                value = element.get_property(pspec.name)
                if not same(pspec, pspec.default_value, value):
                    problems.append(f"{where}: documented default {pspec.default_value!r}, "
                                    f"but a new element has {value!r}")
    print(f"{checked} properties checked")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
