//! The legs of one dial: starting each phone's INVITE with its RTP socket, turning what a leg
//! reports into dialer events (early media, answers, digits, re-offers, its end), failing a leg
//! over to its contact's next DNS target, and the live calls list's view of who is ringing.

use super::*;

/// The per-dial state the actions need.
pub(super) struct Dialing<'a> {
    pub(super) call_id: String,
    pub(super) settings: &'a CallSettings,
    pub(super) record: &'a CallRecord,
    pub(super) members: Vec<Vec<Contact>>,
    pub(super) whisper: Vec<Arc<[i16]>>,
    pub(super) itx: mpsc::UnboundedSender<Internal>,
    pub(super) caller_codec: sdp::AudioEncoding,
    pub(super) local_ip: IpAddr,
    /// Into the caller's media session (early media).
    pub(super) caller_relay: crate::media::RelaySender,
    /// The leg whose early media the caller hears.
    pub(super) early: Option<LegId>,
    /// The ringback tone should stop (`false`) or resume (`true`).
    pub(super) ringback_wanted: Option<bool>,
    /// The dial node's targets, for the live calls list.
    pub(super) targets: Vec<String>,
    /// The phones ringing (or whispered to) now, as the live calls list names them.
    pub(super) ringing: Vec<(LegId, String)>,
    /// `ringing` changed since the live calls list was told.
    pub(super) ringing_changed: bool,
}

impl Dialing<'_> {
    /// Carries out a dialer action; returns leg events it produced at once (a failed start).
    pub(super) async fn execute(
        &mut self,
        call: &mut Call,
        legs: &mut HashMap<LegId, LiveLeg>,
        action: DialAction,
    ) -> Vec<(LegId, LegEvent)> {
        match action {
            DialAction::Start {
                leg,
                member,
                contact,
            } => {
                let started = match self.members.get(member).and_then(|m| m.get(contact)) {
                    Some(c) => {
                        self.start_leg(call, leg, c, (member, contact), c.destination)
                            .await
                    }
                    None => None,
                };
                match started {
                    Some(live) => {
                        let name = match self.members.get(member).and_then(|m| m.get(contact)) {
                            Some(c) if c.member != c.uri => format!("{} ({})", c.member, c.uri),
                            _ => live.member.clone(),
                        };
                        self.ringing.push((leg, name));
                        self.ringing_changed = true;
                        legs.insert(leg, live);
                        Vec::new()
                    }
                    None => vec![(leg, LegEvent::Ended(EndReason::NoResponse))],
                }
            }
            DialAction::Drop(leg) => {
                if let Some(l) = legs.get_mut(&leg) {
                    info!(call_id = %self.call_id, member = %l.member, event = "dial_leg_drop", "dropping staff phone");
                    call.send_to(l.id, CallCommand::Hangup);
                    // Dropping the handle ends the leg's media session.
                    l.media = None;
                    l.socket = None;
                    self.end_early_media(leg);
                }
                self.not_ringing(leg);
                Vec::new()
            }
            DialAction::Whisper(leg) => {
                if let Some(l) = legs.get(&leg)
                    && let Some(m) = l.media.as_ref()
                {
                    info!(call_id = %self.call_id, member = %l.member, event = "whisper", "staff answered; whispering");
                    let mut last = None;
                    for p in &self.whisper {
                        last = Some(m.play(p.clone()));
                    }
                    let itx = self.itx.clone();
                    tokio::spawn(async move {
                        if let Some(p) = last {
                            p.await;
                        }
                        let _ = itx.send(Internal::WhisperDone(leg));
                    });
                }
                Vec::new()
            }
            DialAction::Bridge(_) | DialAction::Finish(_) => Vec::new(),
        }
    }

    /// Binds the leg's RTP port, sends the INVITE to `destination` (the contact's, or one of
    /// its alternates), and forwards the leg's events.
    pub(super) async fn start_leg(
        &self,
        call: &mut Call,
        leg: LegId,
        c: &Contact,
        at: (usize, usize),
        destination: SocketAddr,
    ) -> Option<LiveLeg> {
        let settings = self.settings;
        let local_ip = route_ip(destination).unwrap_or(self.local_ip);
        let (socket, rtp_port) = match socket::bind(settings.rtp_bind_ip, settings.rtp_ports).await
        {
            Ok(x) => x,
            Err(e) => {
                warn!(call_id = %self.call_id, error = %e, "no RTP port for a staff leg; skipping that phone");
                return None;
            }
        };
        let session_id = u64::from(rand::random::<u32>());
        let offer = sdp::offer(self.caller_codec, local_ip, rtp_port, session_id, 1);
        let client = self.record.client.as_ref().map(|c| c.name.clone());
        let display = match (&client, self.record.repeat) {
            (Some(name), true) => format!("{name} (repeat caller)"),
            (Some(name), false) => name.clone(),
            (None, true) => format!("{} (repeat caller)", self.record.caller.as_str()),
            (None, false) => self.record.caller.as_str().to_string(),
        };
        let spec = OutboundCall {
            request_uri: c.uri.clone(),
            destination,
            transport: c.transport,
            local: SocketAddr::new(local_ip, call.sip_port),
            display_name: display,
            from_user: c
                .from_user
                .clone()
                .unwrap_or_else(|| sip_user(self.record.caller.as_str())),
            sdp: offer,
            credentials: c.credentials.clone(),
            redirect_hosts: settings.desk.redirect_hosts.clone(),
            extra_headers: c
                .route
                .iter()
                .map(|r| ("Route".to_string(), r.clone()))
                .chain([("X-IVR-Call-ID".into(), self.call_id.clone())])
                .collect(),
        };
        let (reply, rx) = oneshot::channel();
        call.send(CallCommand::Dial {
            spec: Box::new(spec),
            reply,
        });
        let Leg { id, mut events } = rx.await.ok()?;
        info!(call_id = %self.call_id, member = %c.member, uri = %c.uri, leg = id, event = "dial_leg", "ringing staff phone");
        let itx = self.itx.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if itx.send(Internal::Leg(leg, ev)).is_err() {
                    break;
                }
            }
        });
        Some(LiveLeg {
            id,
            at,
            failovers: 0,
            member: c.member.clone(),
            peer: destination.ip(),
            socket: Some(socket),
            local_ip,
            rtp_port,
            media: None,
            encoding: None,
            dtmf: None,
            session_id,
            sdp_version: 1,
        })
    }

    /// Turns what a leg reports into dialer events.
    pub(super) async fn on_internal(
        &mut self,
        call: &mut Call,
        legs: &mut HashMap<LegId, LiveLeg>,
        msg: Internal,
    ) -> Vec<(LegId, LegEvent)> {
        let now = Instant::now().into_std();
        match msg {
            Internal::WhisperDone(leg) => vec![(leg, LegEvent::WhisperDone)],
            Internal::Rtp(leg, pkt) => legs
                .get_mut(&leg)
                .and_then(|l| l.dtmf.as_mut()?.on_rtp(&pkt, now))
                .map(|d| vec![(leg, LegEvent::Digit(d.digit))])
                .unwrap_or_default(),
            Internal::Leg(leg, ev) => {
                let Some(l) = legs.get_mut(&leg) else {
                    return Vec::new();
                };
                match ev {
                    CallEvent::Progress { status, body } => {
                        if self.settings.desk.early_media
                            && self.early.is_none()
                            && !body.is_empty()
                            && l.media.is_none()
                        {
                            match self.answered(l, leg, &body) {
                                Ok(()) => {
                                    info!(call_id = %self.call_id, member = %l.member, status, event = "early_media", "caller hears the staff phone's early media");
                                    if let Some(m) = l.media.as_ref() {
                                        m.relay_to(Some(self.caller_relay.clone()));
                                    }
                                    self.early = Some(leg);
                                    self.ringback_wanted = Some(false);
                                }
                                Err(why) => {
                                    warn!(call_id = %self.call_id, member = %l.member, reason = %why, "early media SDP unusable; keeping the tone");
                                }
                            }
                        }
                        vec![(leg, LegEvent::Ringing)]
                    }
                    CallEvent::Answered { body } if l.media.is_some() => {
                        // Early media ran on this leg: the whisper is private, the tone resumes.
                        if let Some(m) = l.media.as_ref() {
                            m.relay_to(None);
                            if let Ok((_, neg)) = crate::call::negotiate(&body) {
                                m.set_remote(neg.remote_rtp);
                                crate::call::follow_direction(m, neg.direction);
                            }
                        }
                        self.end_early_media(leg);
                        vec![(leg, LegEvent::Answered)]
                    }
                    CallEvent::Answered { body } => match self.answered(l, leg, &body) {
                        Ok(()) => vec![(leg, LegEvent::Answered)],
                        Err(why) => {
                            warn!(call_id = %self.call_id, member = %l.member, reason = %why, "staff phone's SDP answer unusable; dropping it");
                            call.send_to(l.id, CallCommand::Hangup);
                            vec![(leg, LegEvent::Ended(EndReason::Declined(488)))]
                        }
                    },
                    CallEvent::Info { content_type, body } => l
                        .dtmf
                        .as_mut()
                        .and_then(|r| r.on_info(content_type.as_deref(), &body, now))
                        .map(|d| vec![(leg, LegEvent::Digit(d.digit))])
                        .unwrap_or_default(),
                    CallEvent::ReOffer { offer } => {
                        let media = l.media.take();
                        answer_leg_reoffer(call, l, media.as_ref(), &offer);
                        l.media = media;
                        Vec::new()
                    }
                    CallEvent::Ended { reason } if l.media.is_none() => {
                        let next = self.failover_target(l, &reason);
                        let (at, failovers) = (l.at, l.failovers + 1);
                        l.socket = None;
                        if let Some((c, to)) = next {
                            info!(call_id = %self.call_id, member = %c.member, %reason, next = %to,
                                event = "dial_failover", "desk target failed; trying the next");
                            if let Some(mut live) = self.start_leg(call, leg, c, at, to).await {
                                live.failovers = failovers;
                                legs.insert(leg, live);
                                return Vec::new();
                            }
                        }
                        self.end_early_media(leg);
                        self.not_ringing(leg);
                        vec![(leg, LegEvent::Ended(reason))]
                    }
                    CallEvent::Ended { reason } => {
                        l.media = None;
                        l.socket = None;
                        self.end_early_media(leg);
                        self.not_ringing(leg);
                        vec![(leg, LegEvent::Ended(reason))]
                    }
                    CallEvent::Incoming(_) | CallEvent::Confirmed { .. } => Vec::new(),
                }
            }
        }
    }

    /// The contact and next target for a leg that ended unanswered with a failure that calls
    /// for another target (timeout, 503), if its host name gave one more.
    pub(super) fn failover_target(
        &self,
        l: &LiveLeg,
        reason: &EndReason,
    ) -> Option<(&Contact, SocketAddr)> {
        crate::dns::Failure::of_leg_end(reason).filter(|f| f.fails_over())?;
        let c = self.members.get(l.at.0)?.get(l.at.1)?;
        Some((c, *c.alternates.get(l.failovers)?))
    }

    pub(super) fn not_ringing(&mut self, leg: LegId) {
        let before = self.ringing.len();
        self.ringing.retain(|(l, _)| *l != leg);
        self.ringing_changed |= self.ringing.len() != before;
    }

    /// Tells the live calls list which phones ring, when that changed (this runs on every turn
    /// of the dial loop, caller RTP included, so it must cost nothing otherwise).
    pub(super) fn show_ringing(&mut self, call: &Call) {
        if std::mem::take(&mut self.ringing_changed) {
            call.live_state(crate::live::LiveState::RingingDesk {
                targets: self.targets.clone(),
                phones: self.ringing.iter().map(|(_, n)| n.clone()).collect(),
            });
        }
    }

    pub(super) fn end_early_media(&mut self, leg: LegId) {
        if self.early == Some(leg) {
            self.early = None;
            self.ringback_wanted = Some(true);
        }
    }

    /// The leg answered (or sent early media): start its media session on the socket we offered.
    pub(super) fn answered(
        &mut self,
        l: &mut LiveLeg,
        leg: LegId,
        body: &[u8],
    ) -> Result<(), String> {
        let (_, neg) = crate::call::negotiate(body)?;
        let socket = l.socket.take().ok_or("no RTP socket")?;
        let codec = codec_of(neg.encoding);
        let mut media =
            crate::call::start_media(socket, &neg, l.peer, self.settings, &self.call_id);
        if let Some(mut rx) = media.take_events() {
            let itx = self.itx.clone();
            tokio::spawn(async move {
                while let Some(pkt) = rx.recv().await {
                    if itx.send(Internal::Rtp(leg, pkt)).is_err() {
                        break;
                    }
                }
            });
        }
        info!(call_id = %self.call_id, member = %l.member, codec = codec.name(), remote_rtp = %neg.remote_rtp,
              telephone_event = ?neg.telephone_event, "staff leg media started");
        l.dtmf = Some(DtmfReceiver::new(codec, neg.telephone_event));
        l.encoding = Some(neg.encoding);
        l.media = Some(media);
        Ok(())
    }
}
