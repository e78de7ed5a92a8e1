"""The ChatCaptain widget API contract: one pydantic model per OpenAPI schema (31 of them).

Field names are the vendor's own (camelCase), so a payload round-trips without a
mapping table; only the Python keyword ``from`` needs an alias. Unknown fields are
ignored because the vendor adds fields without notice. No HTTP code lives here.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ContractModel(BaseModel):
    """Base for every contract model: tolerant of extra fields, fillable by name or alias."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ConversationStatus(IntEnum):
    """The state of a conversation; -1 is in the vendor's enum without a documented name."""

    UNKNOWN = -1
    OPEN = 0
    BOT = 1
    IN_PROGRESS = 2
    CLOSED = 3


# --- messages -------------------------------------------------------------------------


class MessagePersonaDto(ContractModel):
    """The persona (name and avatar) shown for the sender of a message."""

    image: str
    name: str


class MessageContentFileDto(ContractModel):
    """A file attachment: image, audio, video or document."""

    name: str
    url: str
    type: str
    mimeType: str
    size: float
    attachmentRef: str
    caption: str | None = None
    transcript: str | None = None
    facebookAttachmentId: str | None = None
    whatsappAttachmentId: str | None = None
    instagramAttachmentId: str | None = None


class MessageContentButtonDto(ContractModel):
    """One button offered to the visitor (e.g. url or postback)."""

    label: str
    type: str
    value: str
    payload: str | None = None


class MessageContentButtonsDto(ContractModel):
    """A set of buttons offered to the visitor."""

    buttons: list[MessageContentButtonDto]


class MessageContentButtonReplyDto(ContractModel):
    """The button a visitor selected."""

    label: str
    value: str
    payload: str | None = None
    type: str | None = None
    reference: str


class MessageTemplateDto(ContractModel):
    """A simple template with header, body and footer text."""

    body: str
    header: str | None = None
    footer: str | None = None


class MessageLocationDto(ContractModel):
    """A geographic location."""

    latitude: float
    longitude: float


class MessageVoiceHangupDto(ContractModel):
    """A voice call hang-up."""

    reason: str
    headers: dict[str, str]


class MessageVoiceTransferDto(ContractModel):
    """A voice call transfer."""

    target: str
    reason: str | None = None
    headers: dict[str, str]


class MessageAgentHandoverDto(ContractModel):
    """A handover of the conversation to a human agent."""

    reason: str
    timeoutSeconds: float | None = None
    agentId: str | None = None
    groupId: str | None = None
    assignmentMethod: str | None = None


class MessageContentEmailDto(ContractModel):
    """An email; ``from`` is a Python keyword, hence the field ``from_``."""

    subject: str
    body: str
    from_: str = Field(alias="from")
    to: list[str]
    cc: list[str]
    bcc: list[str]
    attachmentIds: list[str]
    references: list[str]


class MessageContentTextToSpeechDto(ContractModel):
    """Text to be spoken, optionally with pre-generated speech."""

    text: str
    speech: str | None = None


class MessageMetaWhatsAppTemplate_Header_FileDto(ContractModel):  # noqa: N801 - vendor name
    """The file in a WhatsApp template header."""

    name: str
    url: str
    type: str
    mimeType: str
    size: float
    attachmentRef: str


class MessageMetaWhatsAppTemplate_HeaderDto(ContractModel):  # noqa: N801 - vendor name
    """The header of a WhatsApp template: a file and/or text parameters."""

    file: MessageMetaWhatsAppTemplate_Header_FileDto | None = None
    parameters: list[str]


class MessageMetaWhatsAppTemplate_ButtonDto(ContractModel):  # noqa: N801 - vendor name
    """A button of a WhatsApp template (url or quick_reply)."""

    label: str
    type: str
    url: str | None = None
    value: str | None = None


class MessageMetaWhatsAppTemplateDto(ContractModel):
    """A Meta WhatsApp template; ``bodyText`` holds ``{{n}}`` placeholders."""

    templateName: str
    language: str
    bodyText: str
    headerText: str | None = None
    footerText: str | None = None
    header: MessageMetaWhatsAppTemplate_HeaderDto | None = None
    bodyParameters: list[str]
    buttons: list[MessageMetaWhatsAppTemplate_ButtonDto]


class OperatorDto(ContractModel):
    """The operator behind a message."""

    operatorId: str


class ContentDto(ContractModel):
    """Message content: in practice a union, yet none or several kinds may be set."""

    text: str | None = None
    file: MessageContentFileDto | None = None
    buttons: MessageContentButtonsDto | None = None
    selectedButton: MessageContentButtonReplyDto | None = None
    template: MessageTemplateDto | None = None
    location: MessageLocationDto | None = None
    voiceHangup: MessageVoiceHangupDto | None = None
    voiceTransfer: MessageVoiceTransferDto | None = None
    agentHandover: MessageAgentHandoverDto | None = None
    email: MessageContentEmailDto | None = None
    textToSpeech: MessageContentTextToSpeechDto | None = None
    metaWhatsappTemplate: MessageMetaWhatsAppTemplateDto | None = None
    operator: OperatorDto | None = None
    delay: float | None = None
    leadAiId: str | None = None


class MessageDto(ContractModel):
    """One message; ``outgoing`` true means the platform sent it to the visitor."""

    id: str
    sender: str
    type: str
    persona: MessagePersonaDto | None = None
    providerMessageId: str | None = None
    status: str
    created: str
    processed: str | None = None
    sent: str | None = None
    received: str | None = None
    read: str | None = None
    outgoing: bool
    messengerId: str | None = None
    contextId: str | None = None
    content: ContentDto
    tags: list[str]
    error: str | None = None
    isSensitive: bool | None = None
    streamGroupId: str | None = None
    delay: float | None = None


class ListWidgetConversationMessagesResponseDto(ContractModel):
    """Response of GET .../conversations/{conversationId}/messages."""

    messages: list[MessageDto]
    error: str | None = None


# --- conversations --------------------------------------------------------------------


class ConversationBlockDto(ContractModel):
    """A flow block (or button) of the bot."""

    id: str
    name: str


class ConversationNotesDto(ContractModel):
    """Notes attached to a conversation."""

    notes: list[str]


class ConversationUserInputDto(ContractModel):
    """The pending user-input state of a conversation."""

    redirect: str
    isSensitive: bool | None = None


class ConversationLeadAiConversationDto(ContractModel):
    """Lead AI flow state of a conversation."""

    flowId: str
    stepId: str
    interactions: float
    executionId: str


class ConversationTeamDto(ContractModel):
    """The team assigned to a conversation."""

    teamId: str


class ConversationDto(ContractModel):
    """A conversation between one contact and one chatbot channel."""

    id: str
    contactId: str
    archived: bool
    channelId: str
    channelType: str
    chatbotId: str
    idToken: str
    language: str
    operatorId: str
    photoUrl: str
    sessionCount: float
    tags: list[str]
    unread: bool
    variables: dict[str, str]
    lastBlock: ConversationBlockDto | None = None
    lastButton: ConversationBlockDto | None = None
    created: str
    updated: str
    providerId: str | None = None
    name: str
    lastMessage: ContentDto | None = None
    snoozed: str
    lastUserAction: str
    mentions: list[str]
    mentionsRead: dict[str, bool]
    notes: ConversationNotesDto | None = None
    lastSender: str | None = None
    userInput: ConversationUserInputDto | None = None
    environment: Literal["dev", "test", "prod"]
    metadata: dict[str, str]
    lastUserInput: str | None = None
    leadAiConversation: ConversationLeadAiConversationDto | None = None
    team: ConversationTeamDto | None = None
    state: ConversationStatus
    lastAssignedOperatorId: str | None = None
    lastSeen: str | None = None


class CreateWidgetConversationRequestDto(ContractModel):
    """Body of POST /v1/widget/{chatbotId}/conversations."""

    widgetToken: str
    channelId: str
    language: str


class CreateWidgetConversationResponseDto(ContractModel):
    """Response of POST .../conversations; ``newWebToken`` replaces an expired token."""

    # Required but nullable: the key is always present, its value may be null.
    conversation: ConversationDto | None
    newWebToken: str | None = None
    error: str | None = None


# --- contacts -------------------------------------------------------------------------


class CreateWidgetContactRequestDto(ContractModel):
    """Body of POST /v1/widget/{chatbotId}/contact."""

    channelId: str
    channelToken: str
    originUrl: str
    language: str


class CreateWidgetContactResponseDto(ContractModel):
    """Response of POST .../contact; every field is optional in the vendor's schema."""

    contactId: str | None = None
    widgetToken: str | None = None
    error: str | None = None


# The 31 contract schemas by their OpenAPI names; tests bind this to the document.
CONTRACT_MODELS: dict[str, type[BaseModel] | type[IntEnum]] = {
    cls.__name__: cls
    for cls in (
        ListWidgetConversationMessagesResponseDto,
        MessageDto,
        MessagePersonaDto,
        ContentDto,
        MessageContentFileDto,
        MessageContentButtonsDto,
        MessageContentButtonDto,
        MessageContentButtonReplyDto,
        MessageTemplateDto,
        MessageLocationDto,
        MessageVoiceHangupDto,
        MessageVoiceTransferDto,
        MessageAgentHandoverDto,
        MessageContentEmailDto,
        MessageContentTextToSpeechDto,
        MessageMetaWhatsAppTemplateDto,
        MessageMetaWhatsAppTemplate_HeaderDto,
        MessageMetaWhatsAppTemplate_Header_FileDto,
        MessageMetaWhatsAppTemplate_ButtonDto,
        OperatorDto,
        CreateWidgetConversationRequestDto,
        CreateWidgetConversationResponseDto,
        ConversationDto,
        ConversationBlockDto,
        ConversationNotesDto,
        ConversationUserInputDto,
        ConversationLeadAiConversationDto,
        ConversationTeamDto,
        ConversationStatus,
        CreateWidgetContactRequestDto,
        CreateWidgetContactResponseDto,
    )
}


# --- sandbox extension (NOT part of the vendor contract) ------------------------------


class SandboxSelectedButton(ContractModel):
    """A button choice sent through the sandbox's send extension."""

    label: str
    value: str
    payload: str | None = None


class SandboxSendMessageRequest(ContractModel):
    """Body of the sandbox-only POST .../messages: exactly one of text or selectedButton."""

    text: str | None = None
    selectedButton: SandboxSelectedButton | None = None
    # The sender's own id for this message: a repeat with the same id (a retry after a
    # lost answer) returns the stored message instead of storing it again.
    clientMessageId: str | None = None
