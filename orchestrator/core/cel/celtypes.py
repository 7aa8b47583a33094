"""Static CEL types, as far as the checker knows them (``dyn`` when it cannot know)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

__all__ = ["CelType"]


@dataclass(frozen=True)
class CelType:
    """A static type: ``CelType.INT``, ``CelType.list_of(CelType.STRING)``, ``CelType.map_of(k, v)``,
    ``CelType.DYN`` (checked at runtime)."""

    name: str
    params: tuple[CelType, ...] = ()

    INT: ClassVar[CelType]
    UINT: ClassVar[CelType]
    DOUBLE: ClassVar[CelType]
    STRING: ClassVar[CelType]
    BYTES: ClassVar[CelType]
    BOOL: ClassVar[CelType]
    NULL: ClassVar[CelType]
    TIMESTAMP: ClassVar[CelType]
    DURATION: ClassVar[CelType]
    TYPE: ClassVar[CelType]
    DYN: ClassVar[CelType]
    DYN_MAP: ClassVar[CelType]
    DYN_LIST: ClassVar[CelType]

    @staticmethod
    def list_of(elem: CelType) -> CelType:
        return CelType("list", (elem,))

    @staticmethod
    def map_of(key: CelType, value: CelType) -> CelType:
        return CelType("map", (key, value))

    @property
    def is_dyn(self) -> bool:
        return self.name == "dyn"

    @property
    def is_numeric(self) -> bool:
        return self.name in ("int", "uint", "double")

    @property
    def elem(self) -> CelType:
        """Element type of a list, key type of a map, else dyn."""
        return self.params[0] if self.params else CelType.DYN

    @property
    def value(self) -> CelType:
        """Value type of a map, else dyn."""
        return self.params[1] if len(self.params) > 1 else CelType.DYN

    def __str__(self) -> str:
        if self.name == "list":
            return f"list({self.elem})"
        if self.name == "map":
            return f"map({self.elem}, {self.value})"
        return self.name


CelType.INT = CelType("int")
CelType.UINT = CelType("uint")
CelType.DOUBLE = CelType("double")
CelType.STRING = CelType("string")
CelType.BYTES = CelType("bytes")
CelType.BOOL = CelType("bool")
CelType.NULL = CelType("null_type")
CelType.TIMESTAMP = CelType("timestamp")
CelType.DURATION = CelType("duration")
CelType.TYPE = CelType("type")
CelType.DYN = CelType("dyn")
CelType.DYN_MAP = CelType.map_of(CelType.STRING, CelType.DYN)
CelType.DYN_LIST = CelType.list_of(CelType.DYN)
