"""The app's widgets, one role each."""

from tuichat.widgets.chat_log import ChatLog
from tuichat.widgets.input_line import InputLine
from tuichat.widgets.member_list import MemberList
from tuichat.widgets.window_list import WindowList

__all__ = ["ChatLog", "InputLine", "MemberList", "WindowList"]
