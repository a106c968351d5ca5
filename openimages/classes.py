"""Open Images classes: names <-> MIDs, the hierarchy, and segmentation classes.

Names match exactly, case-insensitively ("dog" is Dog, never "Dog bed"); MIDs such as
"/m/0bt9lr" are accepted too. A class expands to its subclasses through the hierarchy's
``Subcategory`` links only (Person -> Man, Woman, Boy, Girl), never through ``Part``.
"""
import csv
import difflib
import io
import json


class UnknownClassError(ValueError):
    """A class name that is not in the class list; the message lists the closest names."""


class ClassCatalog(object):
    """The boxable class list plus the hierarchy.

    descriptions_csv: text of class-descriptions-boxable.csv (no header: MID,DisplayName).
    hierarchy: the parsed bbox_labels_600_hierarchy.json (or None).
    segmentable: the MIDs of classes-segmentation.txt (or None).
    """

    def __init__(self, descriptions_csv, hierarchy=None, segmentable=None):
        self.mid_to_name = {}
        for row in csv.reader(io.StringIO(descriptions_csv)):
            if len(row) >= 2 and row[0].startswith("/"):
                self.mid_to_name[row[0].strip()] = row[1].strip()
        if not self.mid_to_name:
            raise ValueError("the class description file holds no 'MID,DisplayName' rows")
        self.name_to_mid = {}
        for mid, name in self.mid_to_name.items():
            self.name_to_mid.setdefault(name.lower(), mid)
        self.children = {}
        if hierarchy is not None:
            self._walk(hierarchy)
        self.segmentable = set(segmentable) if segmentable is not None else None

    @classmethod
    def from_files(cls, descriptions_path, hierarchy_path=None, segmentation_path=None):
        with open(descriptions_path, encoding="utf-8") as f:
            text = f.read()
        hierarchy = None
        if hierarchy_path:
            with open(hierarchy_path, encoding="utf-8") as f:
                hierarchy = json.load(f)
        segmentable = None
        if segmentation_path:
            with open(segmentation_path, encoding="utf-8") as f:
                segmentable = [line.strip() for line in f if line.strip()]
        return cls(text, hierarchy, segmentable)

    def _walk(self, node):
        mid = node.get("LabelName")
        subs = node.get("Subcategory", []) or []
        if mid is not None:
            self.children.setdefault(mid, [])
            for child in subs:
                if child.get("LabelName") not in self.children[mid]:
                    self.children[mid].append(child.get("LabelName"))
        for child in subs:
            self._walk(child)
        # Parts are not subclasses, but they may hold subcategories of their own
        for part in node.get("Part", []) or []:
            self._walk(part)

    def resolve(self, name_or_mid):
        """The MID of a class name (exact, case-insensitive) or of a MID."""
        key = name_or_mid.strip()
        if key in self.mid_to_name:
            return key
        mid = self.name_to_mid.get(key.lower())
        if mid is None:
            close = difflib.get_close_matches(key.lower(), list(self.name_to_mid), n=5, cutoff=0.5)
            close = [self.mid_to_name[self.name_to_mid[c]] for c in close]
            contains = sorted(self.mid_to_name[m] for n, m in self.name_to_mid.items()
                              if key.lower() in n and self.mid_to_name[m] not in close)[:5]
            hint = close + contains
            raise UnknownClassError(
                "unknown Open Images class {!r}. Class names match exactly (case does not "
                "matter); {}".format(key, "closest names: " + ", ".join(repr(h) for h in hint)
                                     if hint else "see class-descriptions-boxable.csv"))
        return mid

    def expand(self, mid, subclasses=True):
        """[mid] plus, with subclasses, every MID below it through Subcategory links."""
        out = [mid]
        if subclasses:
            stack = list(self.children.get(mid, []))
            while stack:
                m = stack.pop(0)
                if m not in out:
                    out.append(m)
                    stack.extend(self.children.get(m, []))
        return out

    def name(self, mid):
        return self.mid_to_name.get(mid, mid)

    def has_masks(self, mid):
        return self.segmentable is None or mid in self.segmentable
