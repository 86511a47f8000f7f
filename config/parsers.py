"""The API's JSON parser: DRF's, answering 400 to bodies that would otherwise end in a 500.

Its own module, apart from config/api.py: DRF imports DEFAULT_PARSER_CLASSES while it
builds APIView, so this module must not import rest_framework.views (config/api.py does).
"""

from rest_framework import exceptions, parsers


class JSONParser(parsers.JSONParser):
    """Refuses a body nested deeper than Python's recursion limit ("[[[[…": json raises
    RecursionError) and a string escaping a lone surrogate ("\\ud800", left undefined by
    RFC 8259 §8.2: it parses, then cannot be encoded to UTF-8 for the database or the reply).
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as error:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from error
        if _holds_lone_surrogate(data):
            raise exceptions.ParseError(
                "JSON parse error - a string holds an unpaired surrogate (\\ud800-\\udfff)."
            )
        return data


def _holds_lone_surrogate(data: object) -> bool:
    pending = [data]  # a loop, not recursion: the data may be nested ~1,000 deep
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.values())
            pending.extend(value.keys())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False
